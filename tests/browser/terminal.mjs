// terminal.mjs — the web terminal (exec): a server with exec enabled and a token. A slow job
// runs; its detail shows the Terminal panel; opening it starts a shell in the task's
// workspace (xterm.js, served from the binary); `ls input` lists the downloaded input;
// `exit` ends the session with its code. Cancelling the job ends it on the page.
//
//   node terminal.mjs URL SCREENSHOT_DIR TOKEN

import { api, check, log, scenario, until } from './lib.mjs';

/** The terminal's visible text (xterm's DOM renderer draws rows as text). */
async function screenText(page) {
  return page.$eval('#detail .terminal', (el) => el.innerText).catch(() => '');
}

await scenario('terminal', async ({ page, url, shot, args, allowConsole }) => {
  const [token] = args;
  allowConsole(/the server responded with a status of 401/);

  const submitted = await api(url, '/v1/jobs', {
    method: 'POST',
    token,
    json: { id: 'slow-1', input: { bucket: 'media', key: 'src/long.mp4' }, preset: 'slow-test' },
  });
  check(submitted.status === 201, `submitted: ${JSON.stringify(submitted)}`);
  await until('the job running', async () => (await api(url, '/v1/jobs/slow-1', { token })).body.status === 'running', {
    timeout: 30000,
  });

  await page.goto(url);
  await page.waitForSelector('#gate:not([hidden])');
  await page.fill('#gate-token', token);
  await page.click('#gate-submit');
  await page.waitForSelector('#main:not([hidden])');
  await page.goto(`${url}/#/jobs/slow-1`);
  await page.waitForSelector('#detail .terminal-panel button:not([hidden])');
  await shot('detail');

  await page.click('#detail .terminal-panel button');
  await until('the shell is open', async () =>
    (await page.textContent('#detail .terminal-panel [role="status"]')).includes('Shell in the task'),
  );
  await until('a prompt', async () => (await screenText(page)).trim().length > 0);
  await page.click('#detail .terminal');
  await page.keyboard.type('ls input; echo job=$FFARM_JOB_ID\n');
  await until('the input file and the job id', async () => {
    const text = await screenText(page);
    return text.includes('long.mp4') && text.includes('job=slow-1');
  });
  log('the shell listed the input');
  await shot('ls');

  await page.keyboard.type('exit\n');
  await until('the session end', async () =>
    (await page.textContent('#detail .terminal-panel [role="status"]')).includes('exited with code 0'),
  );
  await shot('exited');

  // A second session, ended by the task ending.
  await page.click('#detail .terminal-panel button');
  await until('the shell is open again', async () =>
    (await page.textContent('#detail .terminal-panel [role="status"]')).includes('Shell in the task'),
  );
  const cancelled = await api(url, '/v1/jobs/slow-1/cancel', { method: 'POST', token });
  check(cancelled.status === 200, `cancelled: ${JSON.stringify(cancelled)}`);
  await until('the notice that the task ended', async () => (await screenText(page)).includes('the task ended'));
  await until('the session closed', async () =>
    !(await page.textContent('#detail .terminal-panel [role="status"]')).includes('Shell in the task'),
  );
  await shot('task-ended');
});
