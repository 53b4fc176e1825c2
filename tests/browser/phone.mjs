// phone.mjs — scenario (f): the page on a 390 px wide phone in dark mode. The jobs table
// becomes cards, the detail covers the screen, nothing overflows sideways in any view; the
// theme toggle switches to light and is remembered; the desktop layout in dark mode too.
//
//   node phone.mjs URL SCREENSHOT_DIR

import { check, rows, scenario, until } from './lib.mjs';

async function noSidewaysScroll(page, where) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    width: window.innerWidth,
  }));
  check(scroll <= width, `${where}: the page is ${scroll} px wide in a ${width} px window`);
}

const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);

await scenario(
  'phone',
  async ({ page, url, shot }) => {
    await page.goto(url);
    await until('the cards', async () => (await rows(page)).length === 49);
    await until('the live feed', () => page.$eval('#live', (e) => e.dataset.state === 'live'));
    check((await background(page)) === 'rgb(15, 19, 24)', `dark background: ${await background(page)}`);
    check(
      (await page.$eval('#jobs-table thead', (t) => getComputedStyle(t).display)) === 'none',
      'no table header on a phone',
    );
    const card = await page.locator('#jobs-body tr').first().boundingBox();
    check(card.width > 300 && card.width <= 390, `rows are full-width cards (${card.width} px)`);
    await noSidewaysScroll(page, 'jobs');
    await shot('jobs-dark');

    await page.click('#submit-toggle');
    await page.waitForSelector('#preset-list input[type=checkbox]');
    await noSidewaysScroll(page, 'new job');
    await shot('new-job-dark');
    await page.click('#submit-close');

    await page.click('#jobs-body tr[data-id="bad-1"] a.job-link');
    await page.waitForSelector('#detail .error-code');
    await until('the timeline', () => page.$('#detail .timeline li'));
    const drawer = await page.locator('#detail').boundingBox();
    check(drawer.width === 390 && drawer.x === 0, `the detail covers the screen (${JSON.stringify(drawer)})`);
    await noSidewaysScroll(page, 'detail');
    await shot('detail-dark');
    await page.click('#detail-close');
    await page.waitForSelector('#detail', { state: 'hidden' });

    await page.click('nav.views a[data-view="workers"]');
    await page.waitForSelector('#view-workers:not([hidden])');
    await noSidewaysScroll(page, 'workers');
    await shot('workers-dark');
    await page.click('nav.views a[data-view="jobs"]');

    check((await page.getAttribute('#theme', 'aria-label')) === 'Switch to the light theme', 'the toggle offers light');
    await page.click('#theme');
    check((await background(page)) === 'rgb(245, 246, 248)', `light background: ${await background(page)}`);
    await page.reload();
    await until('the cards after a reload', async () => (await rows(page)).length === 49);
    check((await page.getAttribute('html', 'data-theme')) === 'light', 'the choice is remembered');
    check((await background(page)) === 'rgb(245, 246, 248)', 'still light after a reload');
    await shot('jobs-light');

    await page.click('#theme');
    await page.setViewportSize({ width: 1280, height: 860 });
    check((await background(page)) === 'rgb(15, 19, 24)', 'dark again');
    check(
      (await page.$eval('#jobs-table thead', (t) => getComputedStyle(t).display)) !== 'none',
      'a table on a laptop',
    );
    await noSidewaysScroll(page, 'desktop');
    await page.click('#jobs-body tr[data-id="done-1"] a.job-link');
    await page.waitForSelector('#detail .outputs a.download');
    await shot('desktop-dark');
  },
  { viewport: { width: 390, height: 844 }, colorScheme: 'dark' },
);
