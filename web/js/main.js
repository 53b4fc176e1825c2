// main.js — starts the page: the token gate (a form shown whenever the API answers 401; the
// rest of the page stays hidden until a token works), the router (#/ jobs, #/jobs/ID the
// job's detail over the list, #/workers), keyboard shortcuts (`/` focuses the search, Escape
// closes the detail or the New job panel), and the live feed every view listens to.

import * as api from './api.js';
import * as charts from './charts.js';
import * as detail from './detail.js';
import * as feed from './events.js';
import * as jobs from './jobs.js';
import * as submit from './submit.js';
import * as workers from './workers.js';

const $ = (id) => document.getElementById(id);
let unlocked = false;
let initialised = false;
/** The list route to return to when the detail closes. */
let listRoute = '#/';
/** What had focus before the detail opened, to give it back. */
let returnFocus = null;

function route() {
  if (!unlocked) return;
  const hash = location.hash || '#/';
  const match = hash.match(/^#\/jobs\/(.+)$/);
  const view = hash.startsWith('#/workers') ? 'workers' : 'jobs';
  for (const link of document.querySelectorAll('nav.views a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  jobs.show(view === 'jobs');
  workers.show(view === 'workers');
  if (view === 'jobs') charts.startOverview();
  else charts.stopOverview();
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (!detail.isOpen()) returnFocus = document.activeElement;
    jobs.select(id);
    detail.open(id);
    document.title = `${id} · ffarm`;
  } else {
    listRoute = hash;
    if (detail.isOpen()) {
      detail.close();
      jobs.select(null);
      returnFocus?.focus?.();
      returnFocus = null;
    }
    document.title = view === 'workers' ? 'Workers · ffarm' : 'ffarm';
  }
}

function closeDetail() {
  location.hash = listRoute;
}

function onKey(e) {
  if (!unlocked) return;
  const typing = e.target.closest?.('input, textarea, select, [contenteditable]');
  if (e.key === 'Escape') {
    if (detail.isOpen()) {
      e.preventDefault();
      closeDetail();
    } else if (submit.isOpen() && !typing) {
      submit.toggle(false);
    }
  } else if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    if (location.hash.startsWith('#/workers')) location.hash = '#/';
    jobs.focusSearch();
  }
}

function initViews() {
  if (initialised) return;
  initialised = true;
  jobs.init();
  workers.init();
  detail.init({ changed: (job) => jobs.patch(job), onClose: closeDetail });
  submit.init({ submitted: (job) => jobs.patch(job) });
  window.addEventListener('hashchange', route);
}

function unlock() {
  unlocked = true;
  $('gate').hidden = true;
  $('main').hidden = false;
  document.querySelector('nav.views').hidden = false;
  $('submit-toggle').hidden = false;
  $('signout').hidden = !api.hasToken();
  initViews();
  feed.start();
  route();
}

/** Hides everything that shows data and asks for a token. */
function lock(reason) {
  const wasUnlocked = unlocked;
  unlocked = false;
  feed.stop();
  charts.stopOverview();
  if (initialised) {
    detail.close();
    jobs.show(false);
    workers.show(false);
    jobs.reset();
  }
  $('main').hidden = true;
  document.querySelector('nav.views').hidden = true;
  $('submit-toggle').hidden = true;
  $('signout').hidden = true;
  $('gate').hidden = false;
  $('gate-error').textContent =
    wasUnlocked && reason ? `The server refused the token: ${reason}. Enter the current one.` : '';
  $('gate-token').value = '';
  $('gate-token').focus();
}

async function signIn(e) {
  e.preventDefault();
  const input = $('gate-token');
  const button = $('gate-submit');
  const candidate = input.value.trim();
  if (!candidate) {
    $('gate-error').textContent = 'Enter the token.';
    return;
  }
  button.disabled = true;
  button.classList.add('busy');
  $('gate-error').textContent = '';
  try {
    await api.request('GET', '/v1/presets', { token: candidate });
    api.setToken(candidate);
    unlock();
  } catch (err) {
    $('gate-error').textContent =
      err.status === 401 ? `This token was refused: ${err.message}.` : `Could not check the token: ${err.message}`;
    input.select();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
  }
}

async function start() {
  $('gate-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', () => {
    api.forgetToken();
    lock();
  });
  document.addEventListener('keydown', onKey);
  api.onUnauthorized((error) => {
    if (unlocked) lock(error.message);
  });
  try {
    await api.presets();
    unlock();
  } catch (e) {
    if (e.status === 401) {
      if (api.hasToken()) api.forgetToken();
      lock();
      return;
    }
    const fatal = $('fatal');
    fatal.hidden = false;
    fatal.textContent = `The farm's API cannot be reached: ${e.message}. Reload the page to try again.`;
  }
}

start();
