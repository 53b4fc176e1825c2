// stop.mjs — scenario (b): a long job submitted from the New job form for an object already in
// the bucket (media/src/long.mp4, no file chosen, preset h264-720p). While it runs, the
// Workers view shows the worker busy with it and the detail draws its encode speed and the
// CPU and memory the task has used so far; Stop (busy at once, a toast) ends it `cancelled`;
// Retry runs it again as attempt 2, stopped again, its log lines arriving in the open detail;
// there is no terminal panel (exec is off); Resubmit with another preset makes a new job that
// succeeds.
//
//   node stop.mjs URL SCREENSHOT_DIR

import { check, log, row, scenario, until } from './lib.mjs';

/** Records, on the page, whether `selector` ever got the `busy` class. */
async function watchBusy(page, selector) {
  await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    el.wasBusy = false;
    new MutationObserver(() => {
      if (el.classList.contains('busy') && el.disabled) el.wasBusy = true;
    }).observe(el, { attributes: true });
  }, selector);
}

async function detailStatus(page) {
  return page.$eval('#detail .status-line .badge', (b) => b.textContent).catch(() => null);
}

async function detailPercent(page) {
  return page.$eval('#detail .bar.big', (b) => Number(b.dataset.percent ?? 0)).catch(() => 0);
}

await scenario('stop', async ({ page, url, shot }) => {
  await page.goto(url);
  await page.waitForSelector('#view-jobs:not([hidden])');
  await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));

  // An object already in the bucket, one preset, no file.
  await page.click('#submit-toggle');
  await page.waitForSelector('#preset-list input[value="h264-720p"]');
  check((await page.textContent('#submit-go')).trim() === 'Upload', 'no file and no preset: Upload');
  check(await page.isDisabled('#submit-go'), 'nothing to do: the button is disabled');
  await page.fill('#key', 'src/long.mp4');
  await page.check('#preset-list input[value="h264-720p"]');
  check((await page.textContent('#submit-go')).trim() === 'Submit 1 job', 'the button says Submit 1 job');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-result .preset-jobs li a');
  const id = (await page.textContent('#submit-result .preset-jobs li a')).trim();
  log(`submitted ${id}`);
  await shot('submitted');
  await page.click('#submit-close');

  await until(`row ${id} running`, async () => {
    const r = await row(page, id);
    return r?.status === 'running' && Number(r.percent) > 0;
  });

  // The Workers view: one worker, its one slot busy with this job.
  await page.click('nav.views a[data-view="workers"]');
  await until('the worker row busy with the job', async () => {
    const text = await page.textContent('#workers-body').catch(() => '');
    return text.includes(id) && text.includes('1 / 1') && text.includes('active');
  });
  const jobLink = page.locator(`#workers-body a[href="#/jobs/${id}"]`);
  check((await jobLink.count()) === 1, 'the worker links to its running job');
  await shot('workers');

  // The worker's link opens the job's detail.
  await jobLink.click();
  await page.waitForSelector('#detail:not([hidden])');
  await until('detail running with progress', async () => (await detailStatus(page)) === 'running' && (await detailPercent(page)) > 0);
  await until('the encode speed chart', () =>
    page.$eval('#detail svg.speed-chart', (s) => Number(s.dataset.samples ?? 0) >= 2),
  );
  const speed = await page.getAttribute('#detail svg.speed-chart', 'aria-label');
  check(/fps/.test(speed), `the speed chart describes itself: ${speed}`);
  check(await page.isVisible('#action-stop'), 'Stop is offered while running');
  check(await page.isHidden('#detail .terminal-panel'), 'no terminal panel where exec is off');
  await until('the CPU and memory the task has used so far', async () =>
    /CPU \d+\.\d s · [\d.]+ (kB|MB|GB) peak/.test(await page.textContent('#detail .ptext')),
  );
  check(await page.isHidden('#action-retry'), 'Retry is not offered while running');
  await shot('running-detail');

  await watchBusy(page, '#action-stop');
  await page.click('#action-stop');
  await until('a toast confirming the stop', async () =>
    /Stop requested|cancelled/.test(await page.textContent('#toasts')),
  );
  check(await page.$eval('#action-stop', (b) => b.wasBusy), 'Stop showed it was busy');
  await until('the job cancelled', async () => (await detailStatus(page)) === 'cancelled', { timeout: 30000 });
  await until('the row cancelled', async () => (await row(page, id))?.status === 'cancelled');
  check(await page.isHidden('#action-stop'), 'Stop is gone once cancelled');
  check(await page.isVisible('#action-retry'), 'Retry is offered once cancelled');
  await until('the timeline shows the stop', async () => {
    const t = await page.textContent('#detail .timeline');
    return t.includes('cancelling') && t.includes('cancelled') && t.includes('stopped from the web page');
  });
  await shot('cancelled');

  // Retry: a second attempt, stopped again.
  await watchBusy(page, '#action-retry');
  await page.click('#action-retry');
  await until('a toast for the retry', async () => (await page.textContent('#toasts')).includes('queued again'));
  check(await page.$eval('#action-retry', (b) => b.wasBusy), 'Retry showed it was busy');
  await until('attempt 2 running', async () => {
    const line = await page.textContent('#detail .status-line');
    return (await detailStatus(page)) === 'running' && line.includes('attempt 2');
  }, { timeout: 30000 });
  // The open detail tails the log: the second attempt's lines arrive without a reload.
  await until("attempt 2's log lines, live", async () => {
    const text = await page.textContent('#detail .log');
    return text.split('\n').some((l) => l.includes('a2') && l.includes('transcoding with preset'));
  });
  await shot('retried');
  await page.click('#action-stop');
  await until('cancelled again', async () => (await detailStatus(page)) === 'cancelled', { timeout: 30000 });
  await until('the attempts table lists both', async () =>
    (await page.$$('#detail table.attempts tbody tr')).length === 2,
  );

  // Resubmit the same input with another preset: a new job, which succeeds.
  await page.selectOption('#resubmit-preset', 'audio-aac-128k');
  await page.click('#action-resubmit');
  await until('a toast for the resubmit', async () => (await page.textContent('#toasts')).includes('with audio-aac-128k'));
  const newId = await page.$eval('#toasts .toast-ok a', (a) => decodeURIComponent(a.getAttribute('href').split('/').pop()));
  check(newId && newId !== id, `a new job: ${newId}`);
  await page.keyboard.press('Escape');
  await until(`row ${newId} succeeded`, async () => (await row(page, newId))?.status === 'succeeded', { timeout: 60000 });
  const newRow = await row(page, newId);
  check(newRow.text.includes('audio-aac-128k'), `the new row names its preset: ${newRow.text}`);
  await shot('resubmitted');
});
