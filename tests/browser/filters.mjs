// filters.mjs — scenario (c): 10,000 jobs in the store (seeded by web_page.rs: 3 succeeded,
// 2 failed, 4 cancelled, the rest queued; 2,000 created three days ago, one failed job two hours
// ago). The tabs' counts match the API and the seeding for every time window; a status tab, a
// window, a custom from/to and a search (by id, by part of a key) each narrow the list; pages
// load 50 at a time and no request ever asks for everything; the charts show the hour's
// throughput and the queue depth; the Workers view tells a draining worker from a lost one and
// shows each one's sandbox level; a burst of 100 cancels arrives through the live feed and
// patches the rows and counts without long stalls.
//
//   node filters.mjs URL SCREENSHOT_DIR EXPECTED_JSON

import { api, check, log, rows, scenario, tabCount, until } from './lib.mjs';

const TABS = ['all', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];

async function counts(page) {
  const out = {};
  for (const t of TABS) out[t] = await tabCount(page, t);
  return out;
}

/** The tabs show `want` (waiting for the debounced refresh). */
async function expectCounts(page, want, what) {
  await until(`tab counts for ${what} = ${JSON.stringify(want)}`, async () => {
    const got = await counts(page);
    return TABS.every((t) => got[t] === want[t]);
  });
}

/** The API's own counts for a window, as tab numbers. */
async function apiCounts(url, since) {
  const { body } = await api(url, `/v1/jobs/counts${since ? `?since=${since}` : ''}`);
  const c = body.counts;
  return {
    all: body.total,
    queued: c.queued,
    running: c.running + c.cancelling,
    succeeded: c.succeeded,
    failed: c.failed,
    cancelled: c.cancelled,
  };
}

async function settled(page) {
  await until('the list to settle', async () => (await page.getAttribute('#jobs-panel', 'aria-busy')) === null);
}

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

await scenario('filters', async ({ page, url, shot, args }) => {
  const expected = JSON.parse(args[0]);
  const listRequests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/v1/jobs') listRequests.push(Number(u.searchParams.get('limit') ?? 'NaN'));
  });

  let t0 = Date.now();
  await page.goto(url);
  await until('the first page of rows', async () => (await rows(page)).length === 50);
  log(`first page rendered in ${Date.now() - t0} ms`);
  await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));
  await expectCounts(page, expected.any, 'any time');
  const fromApi = await apiCounts(url);
  check(TABS.every((t) => fromApi[t] === expected.any[t]), `the API agrees: ${JSON.stringify(fromApi)}`);
  check(await page.isVisible('#load-more'), 'Load more is offered');
  t0 = Date.now();
  const stats = await api(url, '/v1/stats');
  check(stats.status === 200 && stats.body.throughput.length === 60, 'the last hour, per minute');
  log(`/v1/stats over 10,000 jobs answered in ${Date.now() - t0} ms`);
  await until('the throughput chart', async () => (await page.getAttribute('#chart-throughput svg', 'data-ended')) === '9');
  await until('the queue-depth chart', async () =>
    ((await page.getAttribute('#chart-queue svg', 'aria-label')) ?? '').includes(`now: ${expected.any.queued} queued, 0 running`),
  );
  await shot('all');

  // Status tab: Failed.
  t0 = Date.now();
  await page.click('#tab-failed');
  await until('two failed rows', async () => {
    const r = await rows(page);
    return r.length === 2 && r.every((x) => x.status === 'failed');
  });
  log(`Failed tab rendered in ${Date.now() - t0} ms`);
  check((await page.getAttribute('#tab-failed', 'aria-selected')) === 'true', 'the Failed tab is selected');
  check(await page.isHidden('#load-more'), 'no Load more when everything is shown');
  check((await rows(page)).every((r) => r.text.includes('input-unreadable')), 'failed rows show their error code');
  await shot('failed-tab');

  // Time windows.
  for (const w of ['1h', '1d', '7d']) {
    await page.selectOption('#window', w);
    await settled(page);
    await expectCounts(page, expected[w], w);
    const fromApi = await apiCounts(url, w);
    check(TABS.every((t) => fromApi[t] === expected[w][t]), `the API agrees for ${w}: ${JSON.stringify(fromApi)}`);
    const failed = (await rows(page)).map((r) => r.id).sort();
    check(failed.length === expected[w].failed, `${w}: ${expected[w].failed} failed rows, saw ${failed}`);
    if (w === '1h') {
      check(failed.join() === 'bad-1', `last hour: only bad-1 (${failed})`);
      await shot('failed-last-hour');
    }
  }

  // A custom window around bad-2 (created two hours ago).
  await page.selectOption('#window', 'custom');
  await page.waitForSelector('#custom:not([hidden])');
  await page.fill('#from', localInput(Date.now() - 3 * 3600e3));
  await page.fill('#to', localInput(Date.now() - 3600e3));
  await page.dispatchEvent('#to', 'change');
  await expectCounts(page, { all: 1, queued: 0, running: 0, succeeded: 0, failed: 1, cancelled: 0 }, 'the custom window');
  await until('only bad-2', async () => (await rows(page)).map((r) => r.id).join() === 'bad-2');
  await shot('custom-window');

  // Back to everything: pages of 50, "load more" adds the next 50 in order, without repeats.
  await page.selectOption('#window', 'any');
  await page.click('#tab-all');
  await until('50 rows', async () => (await rows(page)).length === 50);
  t0 = Date.now();
  await page.click('#load-more');
  await until('100 rows', async () => (await rows(page)).length === 100);
  log(`second page rendered in ${Date.now() - t0} ms`);
  const ids = (await rows(page)).map((r) => r.id);
  check(new Set(ids).size === 100, 'no job twice');
  const firstTwo = await api(url, '/v1/jobs?limit=100');
  check(firstTwo.body.jobs.map((j) => j.id).join() === ids.join(), 'the rows are the API\'s first 100, in order');
  check((await page.textContent('#jobs-shown')).includes('100 shown'), 'the list says how many are shown');
  await shot('load-more');

  // Keyboard: arrows move between tabs; "/" focuses the search.
  await page.focus('#tab-all');
  await page.keyboard.press('ArrowRight');
  check((await page.getAttribute('#tab-queued', 'aria-selected')) === 'true', 'ArrowRight selects Queued');
  check(await page.evaluate(() => document.activeElement.id === 'tab-queued'), 'focus follows');
  await page.keyboard.press('ArrowLeft');
  await settled(page);
  await page.keyboard.press('/');
  check(await page.evaluate(() => document.activeElement.id === 'search'), '"/" focuses the search');
  await page.keyboard.type('bad-2');
  await until('the search finds bad-2', async () => (await rows(page)).map((r) => r.id).join() === 'bad-2');
  await expectCounts(page, { all: 1, queued: 0, running: 0, succeeded: 0, failed: 1, cancelled: 0 }, 'the search');
  await shot('search');
  // A part of an input key finds its job too.
  await page.fill('#search', 'old-00007');
  await until('the search finds in/old-00007.mp4', async () => {
    const r = await rows(page);
    return r.length === 1 && r[0].text.includes('in/old-00007.mp4');
  });
  await page.fill('#search', '');
  await until('50 rows again', async () => (await rows(page)).length === 50);
  await expectCounts(page, expected.any, 'any time again');

  // The workers view tells a draining worker from one that stopped reporting.
  await page.click('nav.views a[data-view="workers"]');
  await until('the two workers', async () => (await page.$$('#workers-body tr')).length === 2);
  const states = await page.$$eval('#workers-body tr', (trs) =>
    trs.map((tr) => `${tr.dataset.id}=${tr.dataset.state}:${tr.querySelector('.badge')?.textContent}`),
  );
  check(states.join() === 'edge/1=draining:draining,gone/1=lost:lost', `worker states: ${states}`);
  // Each worker's sandbox: what holds in short, the whole level (limits, what is missing and
  // why) in its tooltip and, opened, under it; "off" for a worker that runs without one.
  const sandbox = (id) => page.locator(`#workers-body tr[data-id="${id}"] td[data-label="Sandbox"]`);
  const edge = sandbox('edge/1');
  const summary = (await edge.locator('summary').textContent()).trim();
  check(summary === 'landlock 6, seccomp, 4 GiB', `edge/1's sandbox summary: ${summary}`);
  const title = await edge.locator('details').getAttribute('title');
  for (const part of ['Landlock: ABI 6', 'network namespace: none', 'memory 4 GiB', '256 open files', 'missing: network namespace: Operation not permitted (EPERM)']) {
    check(title.includes(part), `edge/1's sandbox tooltip names "${part}": ${title}`);
  }
  await edge.locator('summary').click();
  const missing = edge.locator('li.missing');
  await until('the opened level shows what is missing', async () => await missing.isVisible());
  const why = await missing.textContent();
  check(why === 'missing: network namespace: Operation not permitted (EPERM)', `edge/1's missing layer: ${why}`);
  const off = (await sandbox('gone/1').textContent()).trim();
  check(off === 'off', `gone/1's sandbox: ${off}`);
  await shot('workers');
  await page.click('nav.views a[data-view="jobs"]');
  await until('50 rows again', async () => (await rows(page)).length === 50);

  // A burst: 100 of the newest queued jobs cancelled at once, seen through the live feed.
  check(
    await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes('longtask')),
    'this Chromium reports long tasks',
  );
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({
      type: 'longtask',
    });
  });
  const newest = (await api(url, '/v1/jobs?status=queued&limit=100')).body.jobs.map((j) => j.id);
  const visible = (await rows(page)).map((r) => r.id);
  t0 = Date.now();
  for (let i = 0; i < newest.length; i += 20) {
    await Promise.all(newest.slice(i, i + 20).map((id) => api(url, `/v1/jobs/${id}/cancel`, { method: 'POST' })));
  }
  log(`cancelled 100 jobs through the API in ${Date.now() - t0} ms`);
  await until('the Cancelled count to reach 104', async () => (await tabCount(page, 'cancelled')) === 104);
  await until('the visible cancelled rows patched', async () => {
    const now = await rows(page);
    return now.filter((r) => newest.includes(r.id)).every((r) => r.status === 'cancelled');
  });
  log(`the page caught up ${Date.now() - t0} ms after the first cancel`);
  check(visible.filter((id) => newest.includes(id)).length === 50, 'the burst touched every visible row');
  const longest = Math.max(0, ...(await page.evaluate(() => window.longTasks)));
  log(`longest main-thread task during the burst: ${longest.toFixed(0)} ms`);
  check(longest < 500, `no long stall while patching (longest task ${longest} ms)`);
  await shot('after-burst');

  check(listRequests.length > 0 && listRequests.every((n) => n > 0 && n <= 100), `list requests asked for pages only: ${listRequests}`);
});
