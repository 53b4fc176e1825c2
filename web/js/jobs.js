// jobs.js — the Jobs view: status tabs with live counts, the time window, search, and the
// paginated list (newest first, `limit` + `next_cursor`; never the whole store). Rows are
// patched in place from the live feed — status and progress events — and the DOM is touched
// at most once per animation frame, so thousands of events per minute stay smooth.

import * as api from './api.js';
import * as feed from './events.js';
import {
  ago,
  badge,
  clockDuration,
  debounce,
  duration,
  h,
  isActive,
  jobHref,
  number,
  parseTime,
  perFrame,
} from './util.js';

const PAGE = 50;
const TABS = [
  { id: 'all', label: 'All', statuses: [] },
  { id: 'queued', label: 'Queued', statuses: ['queued'] },
  { id: 'running', label: 'Running', statuses: ['running', 'cancelling'] },
  { id: 'succeeded', label: 'Succeeded', statuses: ['succeeded'] },
  { id: 'failed', label: 'Failed', statuses: ['failed'] },
  { id: 'cancelled', label: 'Cancelled', statuses: ['cancelled'] },
];

const state = {
  tab: TABS[0],
  window: 'any',
  from: '',
  to: '',
  q: '',
  /** Ids in display order, and the jobs by id. */
  order: [],
  jobs: new Map(),
  cursor: null,
  /** Bumped by every fresh load: answers of an older load are dropped. */
  generation: 0,
  /** Ids whose row must be redrawn, and whether rows were added, removed or reordered. */
  dirty: new Set(),
  reorder: true,
  /** Ids whose whole job should be fetched again (their status changed). */
  stale: new Set(),
  selected: null,
  loaded: false,
};

const rows = new Map();
let els = null;
let visible = false;
let ageTimer = 0;

const draw = perFrame(render);

/** The list filter as query parameters (with the tab's statuses unless `withStatus` is off). */
function filterQuery(withStatus = true) {
  const query = { q: state.q.trim() };
  if (withStatus && state.tab.statuses.length) query.status = state.tab.statuses.join(',');
  if (state.window === 'custom') {
    if (state.from) query.since = new Date(state.from).toISOString();
    if (state.to) query.until = new Date(state.to).toISOString();
  } else if (state.window !== 'any') {
    query.since = state.window;
  }
  return query;
}

function matchesTab(status) {
  return state.tab.statuses.length === 0 || state.tab.statuses.includes(status);
}

/** Newest first, as the API orders: by creation time, then id. */
function newerFirst(a, b) {
  const ta = parseTime(a.created_at);
  const tb = parseTime(b.created_at);
  if (ta !== tb) return tb - ta;
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function showError(e) {
  els.error.hidden = !e;
  els.error.textContent = e ? `Could not load jobs: ${e.message}` : '';
}

/** A fresh first page for the current filter. */
export async function load() {
  const generation = ++state.generation;
  els.panel.setAttribute('aria-busy', 'true');
  refreshCounts();
  try {
    const page = await api.get('/v1/jobs', { ...filterQuery(), limit: PAGE });
    if (generation !== state.generation) return;
    state.jobs = new Map(page.jobs.map((j) => [j.id, j]));
    state.order = page.jobs.map((j) => j.id);
    state.cursor = page.next_cursor;
    state.dirty = new Set(state.order);
    state.reorder = true;
    state.loaded = true;
    showError(null);
  } catch (e) {
    if (generation === state.generation && e.status !== 401) showError(e);
  } finally {
    if (generation === state.generation) els.panel.removeAttribute('aria-busy');
    draw();
  }
}

async function loadMore() {
  if (!state.cursor) return;
  const generation = state.generation;
  els.more.disabled = true;
  els.more.classList.add('busy');
  try {
    const page = await api.get('/v1/jobs', { ...filterQuery(), limit: PAGE, cursor: state.cursor });
    if (generation !== state.generation) return;
    for (const job of page.jobs) {
      if (!state.jobs.has(job.id)) state.order.push(job.id);
      state.jobs.set(job.id, job);
      state.dirty.add(job.id);
    }
    state.cursor = page.next_cursor;
    state.reorder = true;
  } catch (e) {
    if (e.status !== 401) showError(e);
  } finally {
    els.more.disabled = false;
    els.more.classList.remove('busy');
    draw();
  }
}

/**
 * New jobs (or jobs that now match the tab) since the list was loaded: fetches the first page
 * again and merges it, keeping the pages loaded further down. Only jobs that sort before the
 * last loaded row are taken, so "load more" still continues where it left off.
 */
async function refreshTop() {
  const generation = state.generation;
  try {
    const page = await api.get('/v1/jobs', { ...filterQuery(), limit: PAGE });
    if (generation !== state.generation) return;
    const last = state.jobs.get(state.order[state.order.length - 1]);
    let added = false;
    for (const job of page.jobs) {
      const known = state.jobs.has(job.id);
      if (!known && state.cursor && last && newerFirst(job, last) > 0) continue;
      state.jobs.set(job.id, job);
      state.dirty.add(job.id);
      added ||= !known;
    }
    if (added) {
      state.order = [...state.jobs.values()].sort(newerFirst).map((j) => j.id);
      state.reorder = true;
    }
    if (!state.cursor && page.next_cursor && state.order.length >= PAGE) {
      state.cursor = page.next_cursor;
    }
    draw();
  } catch {
    // The next event or resync tries again.
  }
}
const refreshTopSoon = debounce(refreshTop, 400);

/** Fetches again the jobs whose status changed (attempt, error and times change with it). */
async function refreshStale() {
  const ids = [...state.stale].filter((id) => state.jobs.has(id));
  state.stale.clear();
  await Promise.all(
    ids.map(async (id) => {
      try {
        const job = await api.get(api.jobPath(id));
        state.jobs.set(id, job);
        state.dirty.add(id);
      } catch {
        // Gone or unreachable: the row keeps what it showed.
      }
    }),
  );
  draw();
}
const refreshStaleSoon = debounce(refreshStale, 150);

async function refreshCounts() {
  const generation = state.generation;
  try {
    const answer = await api.get('/v1/jobs/counts', filterQuery(false));
    if (generation !== state.generation) return;
    for (const tab of TABS) {
      const n = tab.statuses.length
        ? tab.statuses.reduce((sum, s) => sum + (answer.counts[s] ?? 0), 0)
        : answer.total;
      const count = els.tabs.querySelector(`#tab-${tab.id} .count`);
      count.dataset.count = String(n);
      count.textContent = number(n);
    }
  } catch {
    // Counts are a convenience; the list says what failed.
  }
}
const refreshCountsSoon = debounce(refreshCounts, 700);

// --- live feed -------------------------------------------------------------------------

function onStatus({ id, status }) {
  refreshCountsSoon();
  const job = state.jobs.get(id);
  if (job) {
    if (job.status !== status) {
      job.status = status;
      state.dirty.add(id);
      draw();
    }
    state.stale.add(id);
    refreshStaleSoon();
  } else if (state.loaded && matchesTab(status)) {
    refreshTopSoon();
  }
}

function onProgress({ id, progress }) {
  const job = state.jobs.get(id);
  if (!job) return;
  job.progress = progress;
  if (job.status === 'queued') job.status = 'running';
  state.dirty.add(id);
  draw();
}

// --- rendering -------------------------------------------------------------------------

function cell(label, cls, ...children) {
  return h('td', { 'data-label': label, class: cls }, ...children);
}

function buildRow(id) {
  const link = h('a', { href: jobHref(id), class: 'job-link' });
  const tr = h(
    'tr',
    { dataset: { id } },
    cell('Input', 'c-input', link, h('span', { class: 'job-id' })),
    cell('Preset', 'c-preset'),
    cell('Status', 'c-status'),
    cell('Attempt', 'c-attempt'),
    cell(
      'Progress',
      'c-progress',
      h(
        'div',
        {
          class: 'bar',
          role: 'progressbar',
          'aria-valuemin': '0',
          'aria-valuemax': '100',
          'aria-label': `Progress of ${id}`,
        },
        h('div', { class: 'fill' }),
      ),
      h('span', { class: 'pinfo' }),
    ),
    cell('Age', 'c-age', h('time')),
  );
  tr.refs = {
    link,
    id: tr.querySelector('.job-id'),
    preset: tr.querySelector('.c-preset'),
    status: tr.querySelector('.c-status'),
    attempt: tr.querySelector('.c-attempt'),
    bar: tr.querySelector('.bar'),
    fill: tr.querySelector('.fill'),
    info: tr.querySelector('.pinfo'),
    age: tr.querySelector('time'),
  };
  return tr;
}

/** What the progress cell says for a job that is not running. */
function outcomeText(job) {
  const took = parseTime(job.finished_at) - parseTime(job.started_at);
  switch (job.status) {
    case 'succeeded':
      return `done in ${duration(took / 1000)} · ${job.outputs.length} output${job.outputs.length === 1 ? '' : 's'}`;
    case 'failed':
      return job.error ? job.error.code : 'failed';
    case 'cancelled':
      return 'stopped';
    case 'queued': {
      const after = parseTime(job.run_after);
      if (Number.isFinite(after) && after > Date.now()) {
        return `retry in ${duration((after - Date.now()) / 1000)}`;
      }
      return job.attempt > 0 ? 'waiting to retry' : 'waiting';
    }
    default:
      return '';
  }
}

/** "42.1 % · 96 fps · 3.2× · ETA 1:01", "measuring 40.0 %" (a loudness measure), or the phase
 * before the transcode starts. */
export function progressText(p) {
  if (!p) return 'starting';
  if (p.phase === 'measuring') return `measuring ${p.percent.toFixed(1)} %`;
  if (p.phase !== 'transcoding' && p.phase !== 'finalizing') {
    if (p.bytes_total) return `${p.phase} ${Math.floor((100 * (p.bytes_done ?? 0)) / p.bytes_total)} %`;
    return p.phase;
  }
  const parts = [`${p.percent.toFixed(1)} %`];
  if (p.fps != null) parts.push(`${p.fps.toFixed(0)} fps`);
  if (p.speed != null) parts.push(`${p.speed.toFixed(1)}×`);
  if (p.eta_seconds != null) parts.push(`ETA ${clockDuration(p.eta_seconds)}`);
  return parts.join(' · ');
}

function patchRow(tr, job) {
  const r = tr.refs;
  const input = `${job.input.bucket}/${job.input.key}`;
  if (r.link.textContent !== input) r.link.textContent = input;
  r.id.textContent = job.id;
  r.preset.textContent = job.preset;
  if (r.status.dataset.status !== job.status) {
    r.status.dataset.status = job.status;
    r.status.replaceChildren(badge(job.status));
  }
  tr.dataset.status = job.status;
  r.attempt.textContent = job.attempt ? `${job.attempt} of ${job.max_attempts}` : '–';
  const active = isActive(job.status);
  r.bar.hidden = !active;
  if (active) {
    const percent = Math.max(0, Math.min(100, job.progress?.percent ?? 0));
    r.fill.style.width = `${percent}%`;
    r.bar.setAttribute('aria-valuenow', percent.toFixed(1));
    r.bar.dataset.percent = percent.toFixed(1);
    r.info.textContent = progressText(job.progress);
  } else {
    r.info.textContent = outcomeText(job);
  }
  const created = parseTime(job.created_at);
  r.age.dateTime = job.created_at;
  r.age.title = new Date(created).toLocaleString();
  r.age.textContent = ago(created);
  tr.classList.toggle('selected', state.selected === job.id);
}

function render() {
  if (!els) return;
  for (const id of state.dirty) {
    const job = state.jobs.get(id);
    if (!job) continue;
    let tr = rows.get(id);
    if (!tr) {
      tr = buildRow(id);
      rows.set(id, tr);
    }
    patchRow(tr, job);
  }
  state.dirty.clear();
  if (state.reorder) {
    state.reorder = false;
    const keep = new Set(state.order);
    for (const [id, tr] of rows) {
      if (!keep.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    // Move only what is out of place: rows already in order are not touched.
    let before = els.body.firstElementChild;
    for (const id of state.order) {
      const tr = rows.get(id);
      if (!tr) continue;
      if (tr === before) before = before.nextElementSibling;
      else els.body.insertBefore(tr, before);
    }
  }
  els.empty.hidden = !state.loaded || state.order.length > 0;
  els.more.hidden = !state.cursor;
  els.shown.textContent = state.loaded
    ? `${number(state.order.length)} shown${state.cursor ? '' : ' (all)'}`
    : '';
}

function tickAges() {
  const now = Date.now();
  for (const [id, tr] of rows) {
    const job = state.jobs.get(id);
    if (job) tr.refs.age.textContent = ago(parseTime(job.created_at), now);
  }
}

// --- controls --------------------------------------------------------------------------

function selectTab(tab, focus = false) {
  state.tab = tab;
  for (const t of TABS) {
    const button = els.tabs.querySelector(`#tab-${t.id}`);
    const selected = t === tab;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    if (selected && focus) button.focus();
  }
  els.panel.setAttribute('aria-labelledby', `tab-${tab.id}`);
  load();
}

function buildTabs() {
  els.tabs.replaceChildren(
    ...TABS.map((tab) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${tab.id}`,
          class: `tab tab-${tab.id}`,
          'aria-selected': String(tab === state.tab),
          'aria-controls': 'jobs-panel',
          tabindex: tab === state.tab ? '0' : '-1',
          dataset: { tab: tab.id },
          onclick: () => selectTab(tab),
        },
        h('span', { class: 'label', text: tab.label }),
        h('span', { class: 'count', text: '…', dataset: { count: '' } }),
      ),
    ),
  );
  // Arrow keys move between tabs, as the ARIA tabs pattern expects.
  els.tabs.addEventListener('keydown', (e) => {
    const i = TABS.indexOf(state.tab);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) {
      e.preventDefault();
      selectTab(TABS[(i + step + TABS.length) % TABS.length], true);
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      selectTab(TABS[e.key === 'Home' ? 0 : TABS.length - 1], true);
    }
  });
}

function bindFilters() {
  const reload = debounce(load, 300);
  els.search.addEventListener('input', () => {
    state.q = els.search.value;
    reload();
  });
  els.filters.addEventListener('submit', (e) => {
    e.preventDefault();
    reload.cancel();
    load();
  });
  els.window.addEventListener('change', () => {
    state.window = els.window.value;
    els.custom.hidden = state.window !== 'custom';
    if (state.window === 'custom' && !state.from) {
      // Start from the last day, as local datetime-local values.
      const local = (ms) => {
        const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
        return d.toISOString().slice(0, 16);
      };
      els.from.value = state.from = local(Date.now() - 86400000);
    }
    load();
  });
  for (const input of [els.from, els.to]) {
    input.addEventListener('change', () => {
      state.from = els.from.value;
      state.to = els.to.value;
      load();
    });
  }
  els.more.addEventListener('click', loadMore);
  // A click anywhere on a row opens it (the link in it is the keyboard's way).
  els.body.addEventListener('click', (e) => {
    if (e.target.closest('a, button')) return;
    const tr = e.target.closest('tr[data-id]');
    if (tr && !window.getSelection()?.toString()) location.hash = jobHref(tr.dataset.id);
  });
}

/** Marks the row whose detail is open. */
export function select(id) {
  const previous = state.selected;
  state.selected = id;
  for (const x of [previous, id]) {
    if (x && state.jobs.has(x)) state.dirty.add(x);
  }
  draw();
}

/** The search box, for the `/` shortcut. */
export function focusSearch() {
  els?.search.focus();
  els?.search.select();
}

/** Wires the view to its markup and to the live feed (once). */
export function init() {
  const $ = (id) => document.getElementById(id);
  els = {
    view: $('view-jobs'),
    tabs: $('tabs'),
    panel: $('jobs-panel'),
    body: $('jobs-body'),
    empty: $('jobs-empty'),
    error: $('jobs-error'),
    more: $('load-more'),
    shown: $('jobs-shown'),
    filters: $('filters'),
    search: $('search'),
    window: $('window'),
    custom: $('custom'),
    from: $('from'),
    to: $('to'),
  };
  buildTabs();
  bindFilters();
  feed.on('status', onStatus);
  feed.on('progress', onProgress);
  feed.on('resync', () => load());
}

/** Shows or hides the view; hidden, it stops its timers (events still patch its rows). */
export function show(on) {
  els.view.hidden = !on;
  if (on === visible) return;
  visible = on;
  clearInterval(ageTimer);
  if (on) {
    ageTimer = setInterval(tickAges, 15000);
    if (!state.loaded) load();
    else {
      refreshCounts();
      refreshTop();
    }
  }
}

/** A job the detail view learned about (an action's answer): patched into its row. */
export function patch(job) {
  if (!state.jobs.has(job.id)) {
    if (matchesTab(job.status)) refreshTopSoon();
    return;
  }
  // A copy: rows are patched in place by the feed, the detail keeps its own.
  state.jobs.set(job.id, structuredClone(job));
  state.dirty.add(job.id);
  draw();
  refreshCountsSoon();
}

/** Forgets everything (the token changed). */
export function reset() {
  state.loaded = false;
  state.generation += 1;
  state.order = [];
  state.jobs = new Map();
  state.cursor = null;
  state.reorder = true;
  draw();
}
