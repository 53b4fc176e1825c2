// token.mjs — scenario (e): a server started with FFARM_TOKEN. The page shows only the token
// form (no data, no navigation); a wrong token is refused with the server's reason; the right
// one shows the jobs, opens the live feed (?access_token=) and puts the token in download
// links; it is kept for the tab's session (a reload needs no new sign-in) and "Forget token"
// brings the form back.
//
//   node token.mjs URL SCREENSHOT_DIR TOKEN

import { check, rows, scenario, until } from './lib.mjs';

await scenario('token', async ({ page, url, shot, args, allowConsole }) => {
  const [token] = args;
  // Asking without (or with a wrong) token is how the page learns it needs one.
  allowConsole(/the server responded with a status of 401/);

  await page.goto(url);
  await page.waitForSelector('#gate:not([hidden])');
  check(await page.isHidden('#main'), 'nothing but the form shows');
  check(await page.isHidden('nav.views'), 'no navigation before signing in');
  check((await page.$$('#jobs-body tr')).length === 0, 'no job is in the page');
  check(await page.evaluate(() => document.activeElement.id === 'gate-token'), 'the token field has focus');
  await shot('prompt');

  await page.fill('#gate-token', 'not-the-token-at-all');
  await page.press('#gate-token', 'Enter');
  await until('the refusal', async () => (await page.textContent('#gate-error')).includes('wrong'));
  check(await page.isVisible('#gate'), 'still asking');
  check(await page.isHidden('#main'), 'still nothing else');
  check((await page.evaluate(() => sessionStorage.getItem('ffarm-token'))) === null, 'a wrong token is not kept');
  await shot('wrong-token');

  await page.fill('#gate-token', token);
  await page.click('#gate-submit');
  await page.waitForSelector('#main:not([hidden])');
  await until('the jobs', async () => (await rows(page)).length === 29);
  await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));
  check(await page.isHidden('#gate'), 'the form is gone');
  check((await page.evaluate(() => sessionStorage.getItem('ffarm-token'))) === token, 'kept for the session');
  await shot('signed-in');

  await page.click('#jobs-body tr[data-id="done-1"] a.job-link');
  await page.waitForSelector('#detail .outputs a.download');
  const href = await page.getAttribute('#detail .outputs a.download', 'href');
  check(href.includes(`access_token=${token}`), `the download link carries the token: ${href}`);
  await page.keyboard.press('Escape');

  await page.reload();
  await until('the jobs after a reload', async () => (await rows(page)).length === 29);
  check(await page.isHidden('#gate'), 'no new sign-in after a reload');

  await page.click('#signout');
  await page.waitForSelector('#gate:not([hidden])');
  check(await page.isHidden('#main'), 'forgetting the token hides the data');
  check((await page.evaluate(() => sessionStorage.getItem('ffarm-token'))) === null, 'the token is forgotten');
  await shot('signed-out');
});
