// terminal.mjs — the web terminal (exec): a server with exec enabled and a token. A slow job
// runs; its detail shows the Terminal panel; opening it starts a shell in the task's
// workspace (xterm.js, served from the binary); `ls input` lists the downloaded input;
// `exit` ends the session with its code, and the job's history records it. Cancelling the
// job ends a second session on the page. With EXEC_TOKEN (a farm whose exec has its own
// token) the panel asks for it first: a wrong one is refused with the server's reason, the
// right one opens the shell.
//
//   node terminal.mjs URL SCREENSHOT_DIR TOKEN [EXEC_TOKEN]

import { api, check, log, scenario, until } from './lib.mjs';

/** The terminal's visible text (xterm's DOM renderer draws rows as text). */
async function screenText(page) {
  return page.$eval('#detail .terminal', (el) => el.innerText).catch(() => '');
}

const execToken = process.argv[5];

await scenario(execToken ? 'terminal-exec-token' : 'terminal', async ({ page, url, shot, args, allowConsole }) => {
  const [token] = args;
  allowConsole(/the server responded with a status of 40[13]/);
  allowConsole(/WebSocket connection to .* failed/);

  const submitted = await api(url, '/v1/jobs', {
    method: 'POST',
    token,
    json: { id: 'slow-1', input: { bucket: 'media', key: 'src/long.mp4' }, preset: 'slow-test' },
  });
  check(submitted.status === 201, `submitted: ${JSON.stringify(submitted)}`);
  // Transcoding: the input is downloaded (until then `ls input` shows it as long.partial).
  await until(
    'the job transcoding',
    async () => {
      const job = (await api(url, '/v1/jobs/slow-1', { token })).body;
      return job.status === 'running' && job.progress?.phase === 'transcoding';
    },
    { timeout: 30000 },
  );

  await page.goto(url);
  await page.waitForSelector('#gate:not([hidden])');
  await page.fill('#gate-token', token);
  await page.click('#gate-submit');
  await page.waitForSelector('#main:not([hidden])');
  await page.goto(`${url}/#/jobs/slow-1`);
  await page.waitForSelector('#detail .terminal-panel button:not([hidden])');
  await shot('detail');

  if (execToken) {
    // The API's token does not open shells here: the panel asks for exec's own.
    await page.waitForSelector('#detail .exec-token-form:not([hidden])');
    await page.fill('#detail .exec-token', 'not-the-exec-token-0000');
    await page.press('#detail .exec-token', 'Enter');
    await until('the refusal', async () =>
      (await page.textContent('#detail .terminal-panel [role="status"]')).includes('exec token was refused'),
    );
    await shot('refused');
    await page.fill('#detail .exec-token', execToken);
    await page.press('#detail .exec-token', 'Enter');
  } else {
    check(
      await page.$eval('#detail .exec-token-form', (f) => f.hidden),
      'no exec token asked for where the API token opens shells',
    );
    await page.click('#detail .terminal-panel button');
  }
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
  const history = await api(url, '/v1/jobs/slow-1/history', { token });
  const sessions = history.body.events.filter((e) => e.kind === 'exec' && e.detail?.ended);
  check(
    sessions.some((e) => e.detail.user === 'web-page' && e.detail.exit_code === 0 && e.detail.tty === true),
    `the session is in the job's history: ${JSON.stringify(sessions)}`,
  );

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
