// lib.mjs — what every browser scenario shares: Debian's Chromium launched headless through
// playwright-core (no browser download), a page that records console errors (Chromium logs
// failed requests there too) and uncaught exceptions, numbered screenshots for each step,
// and small assertions that say what was expected. A scenario is
// `node SCRIPT.mjs URL SCREENSHOT_DIR [ARGS…]`, run by tests/it/web_page.rs; it exits 0 when
// every check held.
//
// While working on the page, FFARM_WEB_DIR=web serves the page's files from that folder
// instead of the binary's embedded copy, so a change needs no rebuild (the tests never set it).

import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.FFARM_CHROMIUM || '/usr/bin/chromium';

/** Fails the scenario with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const started = Date.now();

export function log(...parts) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s]`, ...parts);
}

/** Polls `probe` until it returns something truthy; fails with `what` after `timeout` ms. */
export async function until(what, probe, { timeout = 20000, every = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * Runs a scenario: `body({page, context, browser, url, shot, args, allowConsole})`. Console
 * errors fail it unless they match a pattern passed to `allowConsole`.
 */
export async function scenario(name, body, { viewport = { width: 1280, height: 860 }, colorScheme = 'light' } = {}) {
  const [url, shots, ...args] = process.argv.slice(2);
  if (!url || !shots) {
    console.error(`usage: node ${name}.mjs URL SCREENSHOT_DIR`);
    process.exit(2);
  }
  mkdirSync(shots, { recursive: true });
  // This run's screenshots only: a step that no longer exists leaves no stale picture.
  for (const f of readdirSync(shots)) if (f.startsWith(`${name}-`)) rmSync(join(shots, f));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport, colorScheme, acceptDownloads: true });
  if (process.env.FFARM_WEB_DIR) await serveFromDisk(context, resolve(process.env.FFARM_WEB_DIR));
  const page = await context.newPage();
  const problems = [];
  const allowed = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !allowed.some((re) => re.test(m.text()))) {
      problems.push(`console error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
    }
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
  let step = 0;
  const shot = async (label) => {
    step += 1;
    const file = join(shots, `${name}-${String(step).padStart(2, '0')}-${label}.png`);
    await page.screenshot({ path: file, fullPage: false });
    log(`screenshot ${file}`);
  };
  let failed = null;
  try {
    await body({ page, context, browser, url, shot, args, allowConsole: (re) => allowed.push(re) });
  } catch (e) {
    failed = e;
    try {
      await shot('failure');
    } catch {
      // The page may be gone.
    }
  }
  await browser.close();
  if (problems.length) {
    console.error(`${name}: the page reported problems:\n  ${problems.join('\n  ')}`);
  }
  if (failed) {
    console.error(`${name}: ${failed.stack || failed}`);
    process.exit(1);
  }
  if (problems.length) process.exit(1);
  log(`${name}: every check held`);
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

/** Answers the page's own files from `dir` (see FFARM_WEB_DIR above). */
async function serveFromDisk(context, dir) {
  const answer = (route, file) =>
    route.fulfill({ body: readFileSync(join(dir, file)), contentType: TYPES[extname(file)] ?? 'application/octet-stream' });
  await context.route(/\/assets\//, (route) => answer(route, new URL(route.request().url()).pathname.replace('/assets/', '')));
  await context.route((u) => u.pathname === '/', (route) => answer(route, 'index.html'));
}

/** The rows of the jobs table as {id, status, percent, text}. */
export async function rows(page) {
  return page.$$eval('#jobs-body tr', (trs) =>
    trs.map((tr) => ({
      id: tr.dataset.id,
      status: tr.dataset.status,
      percent: tr.querySelector('.bar:not([hidden])')?.dataset.percent ?? null,
      text: tr.innerText,
    })),
  );
}

/** The row of job `id`, or undefined. */
export async function row(page, id) {
  return (await rows(page)).find((r) => r.id === id);
}

/** The count a status tab shows, as a number. */
export async function tabCount(page, tab) {
  const text = await page.getAttribute(`#tab-${tab} .count`, 'data-count');
  return text === '' || text == null ? NaN : Number(text);
}

/** Calls the API from the test (not through the page). */
export async function api(url, path, { method = 'GET', json, token } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
