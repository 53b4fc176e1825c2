// failure.mjs — scenario (d): a text file named .mp4 dropped onto the New job panel (drag and
// drop) and uploaded into media/in/; the rule's job fails with `input-unreadable`. Its row says
// so, and its detail shows the error's code and message, the failed attempt with its CPU time
// and peak memory, and the task's log, and offers Retry, not Stop. Resubmitting after the input was deleted shows the server's own
// error message in a toast. The same file uploaded outside the rule's folder with a chosen
// preset: the answer says what the rules ignored and why, and lists the preset's job.
//
//   node failure.mjs URL SCREENSHOT_DIR TEXT_FILE DATA_DIR

import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { check, row, scenario, until } from './lib.mjs';

await scenario('failure', async ({ page, url, shot, args, allowConsole }) => {
  const [textFile, dataDir] = args;
  // The resubmit below is refused on purpose (404): Chromium logs the failed request.
  allowConsole(/the server responded with a status of 404/);

  await page.goto(url);
  await page.waitForSelector('#view-jobs:not([hidden])');
  await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));
  await page.click('#submit-toggle');
  await page.waitForSelector('#preset-list input[type=checkbox]');

  // Drag and drop, as from a file manager.
  const bytes = [...readFileSync(textFile)];
  const transfer = await page.evaluateHandle((data) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(data)], 'bad.mp4', { type: 'video/mp4' }));
    return dt;
  }, bytes);
  await page.dispatchEvent('#drop', 'dragover', { dataTransfer: transfer });
  check(await page.$eval('#drop', (d) => d.classList.contains('dragging')), 'the drop zone lights up');
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });
  check((await page.textContent('#file-name')).includes('bad.mp4'), 'the dropped file is named');
  check((await page.inputValue('#key')) === 'in/bad.mp4', 'the key follows the dropped file');
  await shot('dropped');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-result .rule-jobs li a');
  const id = (await page.textContent('#submit-result .rule-jobs li a')).trim();
  await page.click('#submit-close');

  await until(`row ${id} failed with its error code`, async () => {
    const r = await row(page, id);
    return r?.status === 'failed' && r.text.includes('input-unreadable');
  }, { timeout: 30000 });
  await shot('failed-row');

  await page.click(`#jobs-body tr[data-id="${id}"] a.job-link`);
  await page.waitForSelector('#detail .error-box .error-code');
  check((await page.textContent('#detail .error-code')) === 'input-unreadable', 'the error code');
  const message = await page.textContent('#detail .error-message');
  check(message.length > 10, `the error message: ${message}`);
  check(await page.isVisible('#action-retry'), 'Retry is offered');
  check(await page.isHidden('#action-stop'), 'Stop is not offered');
  await until('the failed attempt', async () => {
    const a = await page.textContent('#detail table.attempts tbody').catch(() => '');
    return a.includes('failed') && a.includes('input-unreadable');
  });
  // The attempt's resource figures, measured from the task process.
  const cells = await page.$$eval('#detail table.attempts tbody tr:first-child td', (tds) =>
    Object.fromEntries(tds.map((td) => [td.dataset.label, td.textContent.trim()])),
  );
  check(/^\d+\.\d s$/.test(cells.CPU ?? ''), `the CPU time: ${JSON.stringify(cells)}`);
  check(/^[\d.]+ (B|kB|MB|GB)$/.test(cells['Peak memory'] ?? ''), `the peak memory: ${JSON.stringify(cells)}`);
  await until('the log', async () => {
    const log = await page.textContent('#detail .log');
    return log.includes('a1') && log.split('\n').length > 2;
  });
  const logText = await page.textContent('#detail .log');
  check(/bad\.mp4/.test(logText), 'the log names the input');
  await page.locator('#detail .log').scrollIntoViewIfNeeded();
  await shot('failed-detail');

  // The input disappears; resubmitting it is refused and the toast says why, in the server's words.
  unlinkSync(join(dataDir, 'buckets/media/in/bad.mp4'));
  await page.selectOption('#resubmit-preset', 'mp4');
  await page.click('#action-resubmit');
  await page.waitForSelector('.toast-error');
  const error = await page.textContent('.toast-error');
  check(error.includes('media/in/bad.mp4: no such object'), `the server's message is shown: ${error}`);
  check(await page.isEnabled('#action-resubmit'), 'the button is usable again');
  await shot('resubmit-refused');
  await page.keyboard.press('Escape');

  // Outside the rule's folder, with a preset: ignored by the rules, submitted for the preset.
  await page.click('#submit-toggle');
  check((await page.textContent('#file-name')).includes('bad.mp4'), 'the dropped file is still chosen');
  await page.fill('#key', 'notes/bad.mp4');
  await page.check('#preset-list input[value="mp4"]');
  check((await page.textContent('#submit-go')).trim() === 'Upload and submit 1 job', 'the button says what happens');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-result .ignored li');
  const ignored = await page.textContent('#submit-result .ignored');
  check(ignored.includes('notes/bad.mp4') && /rule/.test(ignored), `why the rules ignored it: ${ignored}`);
  check((await page.$$('#submit-result .rule-jobs')).length === 0, 'no rule job');
  await page.waitForSelector('#submit-result .preset-jobs li a');
  const presetJob = await page.textContent('#submit-result .preset-jobs li');
  check(presetJob.includes('mp4'), `the preset's job: ${presetJob}`);
  await shot('ignored-and-preset-job');
});
