// upload.mjs — scenario (a): a clip uploaded through the New job form into media/in/ (the
// default trigger rule's folder). The upload bar reaches 100 %, the answer lists the job the
// rule made; its row shows `queued` (the only worker is busy with a blocker job, cancelled
// through the API once the row is seen queued), then a progress bar whose percent rises with
// fps, speed and ETA beside it, then
// `succeeded`; the detail shows its attempt and log, and its output downloads (200, not empty).
//
//   node upload.mjs URL SCREENSHOT_DIR CLIP

import { basename } from 'node:path';
import { statSync } from 'node:fs';
import { api, check, log, row, scenario, until } from './lib.mjs';

await scenario('upload', async ({ page, url, shot, args }) => {
  const [clip] = args;
  check(clip, 'the clip to upload is the third argument');

  // The only worker slot runs a blocker, so the uploaded job has to wait in the queue.
  const blocker = await api(url, '/v1/jobs', {
    method: 'POST',
    json: { id: 'blocker', input: { bucket: 'media', key: 'src/blocker.mp4' }, preset: 'h264-720p' },
  });
  check(blocker.status === 201, `blocker submitted: ${JSON.stringify(blocker)}`);
  await until('the blocker to run', async () => (await api(url, '/v1/jobs/blocker')).body.status === 'running');

  await page.goto(url);
  await page.waitForSelector('#view-jobs:not([hidden])');
  await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));
  await until('the blocker row running', async () => (await row(page, 'blocker'))?.status === 'running');
  // Every status the page ever shows for a row, in order (a MutationObserver sees each one).
  await page.evaluate(() => {
    window.seenStatuses = {};
    const note = (tr) => {
      const list = (window.seenStatuses[tr.dataset.id] ??= []);
      if (tr.dataset.status && list.at(-1) !== tr.dataset.status) list.push(tr.dataset.status);
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes') note(r.target);
        for (const n of r.addedNodes ?? []) if (n.dataset?.id) note(n);
      }
    }).observe(document.getElementById('jobs-body'), {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ['data-status'],
    });
  });
  await shot('blocker-running');

  await page.click('#submit-toggle');
  await page.waitForSelector('#submit-panel:not([hidden])');
  await page.waitForSelector('#preset-list input[type=checkbox]');
  await page.setInputFiles('#file', clip);
  const name = basename(clip);
  check((await page.inputValue('#key')) === `in/${name}`, 'the key defaults to in/FILENAME');
  check((await page.inputValue('#bucket')) === 'media', 'the bucket defaults to media');
  check((await page.textContent('#submit-go')).trim() === 'Upload', 'the button says Upload');
  await shot('form-filled');

  // Watch the upload bar: it must move and end at 100 %.
  await page.evaluate(() => {
    window.uploadValues = [];
    const bar = document.getElementById('upload-bar');
    new MutationObserver(() => window.uploadValues.push(bar.value)).observe(bar, { attributes: true });
  });
  await page.click('#submit-go');
  await page.waitForSelector('#submit-result .rule-jobs li a', { timeout: 30000 });
  const uploadValues = await page.evaluate(() => window.uploadValues);
  check(uploadValues.length > 0 && uploadValues.at(-1) === 100, `upload bar ended at 100 (saw ${uploadValues})`);
  const uploadText = await page.textContent('#upload-text');
  check(uploadText.startsWith('100 %'), `upload text says 100 %: ${uploadText}`);
  const result = await page.textContent('#submit-result');
  const size = statSync(clip).size;
  check(result.includes(`Uploaded media/in/${name}`), `the answer names the object: ${result}`);
  const id = (await page.textContent('#submit-result .rule-jobs li a')).trim();
  check(/queued/.test(await page.textContent('#submit-result .rule-jobs li')), 'the rule job is listed as queued');
  log(`uploaded ${size} bytes; rule job ${id}`);
  await shot('uploaded');
  await page.click('#submit-close');
  await page.waitForSelector('#submit-panel', { state: 'hidden' });

  await until(`row ${id} queued`, async () => (await row(page, id))?.status === 'queued');
  await shot('queued');
  const cancel = await api(url, '/v1/jobs/blocker/cancel', { method: 'POST' });
  check(cancel.status === 200, `blocker cancelled: ${cancel.status}`);

  // Running: the bar's percent must rise while the job runs.
  const percents = [];
  let shotRunning = false;
  let rates = null;
  await until(
    `row ${id} to succeed`,
    async () => {
      const r = await row(page, id);
      if (r?.status === 'running' && r.percent != null) {
        const p = Number(r.percent);
        if (percents.at(-1) !== p) percents.push(p);
        // "42.1 % · 96 fps · 3.2× · ETA 0:12" while it transcodes.
        rates ??= r.text.match(/[\d.]+ % · \d+ fps · [\d.]+× · ETA \d+:\d\d/)?.[0] ?? null;
        if (!shotRunning && p > 10) {
          shotRunning = true;
          await shot('running');
        }
      }
      return r?.status === 'succeeded';
    },
    { timeout: 90000, every: 200 },
  );
  log(`percents seen: ${percents.join(', ')}; the row said ${rates}`);
  check(rates, 'the running row shows percent, fps, speed and ETA');
  const rising = percents.filter((p, i) => i > 0 && p > percents[i - 1]).length;
  check(percents.length >= 3 && rising >= 2, `a moving progress bar (percents seen: ${percents})`);
  const statuses = (await page.evaluate(() => window.seenStatuses))[id];
  log(`statuses the row showed: ${statuses.join(' → ')}`);
  check(
    statuses[0] === 'queued' && statuses.includes('running') && statuses.at(-1) === 'succeeded',
    `queued → running → succeeded (saw ${statuses})`,
  );
  const blockerRow = await row(page, 'blocker');
  check(blockerRow.status === 'cancelled', `the blocker row shows cancelled (${blockerRow.status})`);
  await until('the Succeeded tab count', async () => (await page.getAttribute('#tab-succeeded .count', 'data-count')) === '1');
  await shot('succeeded');

  // Detail: attempt, timeline, log, output link.
  await page.click(`#jobs-body tr[data-id="${id}"] a.job-link`);
  await page.waitForSelector('#detail:not([hidden]) .outputs a.download');
  check(page.url().endsWith(`#/jobs/${id}`), `the route names the job: ${page.url()}`);
  await until('the attempts table', () => page.$('#detail table.attempts tbody tr'));
  const attempt = await page.textContent('#detail table.attempts tbody tr');
  check(attempt.includes('succeeded') && attempt.includes('transcoding'), `the attempt row: ${attempt}`);
  await until('log lines', async () => (await page.textContent('#detail .log')).trim().length > 0);
  const timeline = await page.textContent('#detail .timeline');
  check(timeline.includes('queued') && timeline.includes('running') && timeline.includes('succeeded'), `timeline: ${timeline}`);
  const trigger = await page.textContent('#detail');
  check(trigger.includes('source: upload'), 'the trigger source is shown');
  const checked = await page.textContent('#detail .outputs .check');
  check(/checked: \d+\.\d\d s, h264 \d+x\d+/.test(checked), `the output's check is shown: ${checked}`);
  await shot('detail');

  const link = page.locator('#detail .outputs a.download').first();
  const href = await link.getAttribute('href');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const failure = await download.failure();
  check(!failure, `the download failed: ${failure}`);
  const saved = statSync(await download.path()).size;
  check(saved > 0, 'the downloaded output is not empty');
  const response = await page.request.get(new URL(href, url).toString());
  check(response.status() === 200, `GET ${href} answered ${response.status()}`);
  const body = await response.body();
  check(body.length === saved && body.length > 1000, `download size ${saved}, GET size ${body.length}`);
  log(`downloaded ${download.suggestedFilename()} (${saved} bytes)`);

  // Escape closes the detail and gives the list back.
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
  check(!page.url().includes('#/jobs/'), 'Escape returns to the list route');
  await shot('closed');
});
