// parts.mjs — a split job's parts in its detail. `split-run` (video parts of 30, 30, 30, 30,
// 30 and 15 s: two succeeded, two running at 40 and 75 %, two queued; its audio and assembly
// queued) shows a strip of six segments as wide as their parts, coloured by state, the
// running ones filled as far as they got, then the audio and assembly marks; each segment's
// tooltip and aria-label name its range, attempt and worker, and hovering one says so under
// the strip. Then this script writes READY_FILE, the test finishes part 2 and moves part 3 to
// 90 % through the store, and the strip follows without a reload. `split-bad` (a part failed
// for good) shows its failed and cancelled parts in their colours and the part's error.
//
//   node parts.mjs URL SCREENSHOT_DIR READY_FILE

import { writeFileSync } from 'node:fs';
import { check, log, scenario, until } from './lib.mjs';

/** Every segment and mark of the open detail, as the page draws it. */
async function pieces(page) {
  return page.$$eval('#detail [data-seq]', (els) =>
    els.map((el) => {
      const box = el.getBoundingClientRect();
      const fill = el.querySelector('.part-fill').getBoundingClientRect();
      return {
        seq: Number(el.dataset.seq),
        kind: el.dataset.kind,
        step: el.classList.contains('part-step'),
        status: el.dataset.status,
        worker: el.dataset.worker,
        title: el.title,
        label: el.getAttribute('aria-label'),
        width: box.width,
        filled: box.width ? fill.width / box.width : 0,
        colour: getComputedStyle(el).backgroundColor,
      };
    }),
  );
}

/** What the page's colour variable `name` resolves to, as computed colours are written. */
async function colour(page, name) {
  return page.evaluate((v) => {
    const probe = document.createElement('span');
    probe.style.backgroundColor = `var(${v})`;
    document.body.append(probe);
    const c = getComputedStyle(probe).backgroundColor;
    probe.remove();
    return c;
  }, name);
}

async function openJob(page, url, id) {
  await page.goto(`${url}/#/jobs/${id}`);
  await page.waitForSelector('#detail .parts-strip .part-seg');
}

await scenario('parts', async ({ page, url, shot, args }) => {
  const [readyFile] = args;
  await page.goto(url);
  await page.waitForSelector('#view-jobs:not([hidden])');
  const ok = await colour(page, '--ok');
  const bad = await colour(page, '--bad');
  const idle = await colour(page, '--idle');

  await openJob(page, url, 'split-run');
  const all = await pieces(page);
  const video = all.filter((p) => !p.step);
  const steps = all.filter((p) => p.step);
  check(video.length === 6, `six segments, one per video part: ${video.length}`);
  check(steps.map((p) => p.kind).join() === 'audio,assemble', `then the audio and the assembly: ${JSON.stringify(steps)}`);
  const states = video.map((p) => p.status).join();
  check(states === 'succeeded,succeeded,running,running,queued,queued', `the parts' states: ${states}`);
  check(steps.every((p) => p.status === 'queued'), 'the audio and assembly wait');

  // Widths follow durations: the 15 s part is half as wide as a 30 s one.
  const ratio = video[5].width / video[0].width;
  check(Math.abs(ratio - 0.5) < 0.05, `the 15 s part is half a 30 s one: ${ratio.toFixed(3)}`);
  check(Math.abs(video[1].width - video[4].width) < 1, 'equal parts, equal widths');

  // Colours by state; a running part filled as far as it got.
  check(video[0].colour === ok && video[1].colour === ok, `succeeded parts are green: ${video[0].colour} vs ${ok}`);
  const [queued, running] = [video[4].colour, video[2].colour];
  check(new Set([ok, queued, running]).size === 3, `queued, running and succeeded differ: ${queued} ${running} ${ok}`);
  check(Math.abs(video[2].filled - 0.4) < 0.03, `part 2 filled to 40 %: ${video[2].filled}`);
  check(Math.abs(video[3].filled - 0.75) < 0.03, `part 3 filled to 75 %: ${video[3].filled}`);
  check(video[4].filled === 0 && video[0].filled === 0, 'no fill on waiting or finished parts');

  // Each segment says what it is: tooltip and aria-label alike.
  for (const p of video) check(p.title === p.label, `part ${p.seq}'s tooltip is its label`);
  check(video[2].label.includes('Part 2, 0:01:00–0:01:30: running 40 %'), `part 2's label: ${video[2].label}`);
  check(video[2].label.includes('attempt 1') && video[2].label.includes('worker w-c/1'), `part 2's label: ${video[2].label}`);
  check(video[5].label.startsWith('Part 5, 0:02:30–0:02:45: queued'), `part 5's label: ${video[5].label}`);
  check(steps[0].label.startsWith('Audio, 0:00:00–0:02:45: queued'), `the audio's label: ${steps[0].label}`);
  const summary = await page.textContent('#detail .parts-summary');
  check(summary === '6 video parts: 2 succeeded · 2 running · 2 queued', `the summary: ${summary}`);

  // Hover: the worker, attempt and range under the strip (and in the tooltip).
  await page.hover('#detail .part-seg[data-seq="2"]');
  await until('the hovered part described', async () =>
    (await page.textContent('#detail .part-info')).includes('worker w-c/1'),
  );
  await page.hover('#detail .part-seg[data-seq="1"]');
  const info = await page.textContent('#detail .part-info');
  check(info.includes('Part 1, 0:00:30–0:01:00: succeeded, attempt 1, worker w-b/1'), `hovering part 1: ${info}`);
  await shot('running');

  // Live: the test finishes part 2 and moves part 3 on; the page follows, not reloaded.
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  await page.hover('#detail .part-seg[data-seq="2"]');
  writeFileSync(readyFile, 'ready');
  log('waiting for part 2 to finish');
  await until('part 2 green', async () => {
    const p = (await pieces(page)).find((x) => x.seq === 2);
    return p.status === 'succeeded' && p.colour === ok;
  });
  await until('part 3 at 90 %', async () => {
    const p = (await pieces(page)).find((x) => x.seq === 3);
    return Math.abs(p.filled - 0.9) < 0.03 && p.label.includes('running 90 %');
  });
  check(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
  const hovered = await page.textContent('#detail .part-info');
  check(hovered.includes('Part 2') && hovered.includes('succeeded'), `the hovered part's line follows: ${hovered}`);
  const after = await page.textContent('#detail .parts-summary');
  check(after === '6 video parts: 3 succeeded · 1 running · 2 queued', `the summary follows: ${after}`);
  await shot('live');

  // A failed split job: its failed part red with its error, the rest cancelled, grey.
  await openJob(page, url, 'split-bad');
  const failed = await pieces(page);
  const statuses = failed.map((p) => p.status).join();
  check(statuses === 'succeeded,failed,cancelled,cancelled,cancelled', `split-bad's parts: ${statuses}`);
  check(failed[1].colour === bad, `the failed part is red: ${failed[1].colour} vs ${bad}`);
  check(failed[2].colour === idle && failed[4].colour === idle, `cancelled parts are grey: ${failed[2].colour}`);
  check(failed[1].label.includes('encode-failed') && failed[1].label.includes('worker w-b/1'), `the failed part's label: ${failed[1].label}`);
  await page.focus('#detail .part-seg[data-seq="1"]');
  const focused = await page.textContent('#detail .part-info');
  check(focused.includes('encode-failed'), `focusing the failed part describes it: ${focused}`);
  await shot('failed');
});
