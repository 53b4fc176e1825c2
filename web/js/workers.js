// workers.js — the Workers view: every registered worker with its host, state (active,
// draining, lost), slots and busy slots, the jobs it runs (links to them), the age of its
// last heartbeat, its version and what the sandbox of its engine processes holds (a short
// summary; the whole level, missing layers and limits, when opened). Refreshed on `worker`
// events and every 5 s while shown.

import * as api from './api.js';
import * as feed from './events.js';
import { ago, badge, clock, debounce, duration, h, jobHref, parseTime } from './util.js';

const REFRESH_MS = 5000;

let els = null;
let timer = 0;
let visible = false;
let workers = [];
// The workers whose sandbox level is opened: kept open across refreshes.
const opened = new Set();

/** A size in binary units, as the command line shows it: "4 GiB", "1.5 GiB", "256 B". */
function binaryBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1).replace(/\.0$/, '')} ${units[i]}`;
}

/** What holds, short, as `ffarm workers` says it: "landlock 6, seccomp, netns, 4 GiB"; "off"
 * when the operator turned the sandbox off. Missing layers are not listed. */
function sandboxSummary(level) {
  if (!level.enabled) return 'off';
  const held = [];
  if (level.landlock_abi != null) held.push(`landlock ${level.landlock_abi}`);
  if (level.seccomp) held.push('seccomp');
  if (level.network_namespace) held.push('netns');
  if (level.limits) held.push(binaryBytes(level.limits.memory_bytes));
  return held.length ? held.join(', ') : 'none';
}

/** The whole level, a line each: every layer, the limits, and each missing layer with why. */
function sandboxLines(level) {
  const limits = level.limits;
  const caps = limits && [
    `memory ${binaryBytes(limits.memory_bytes)}`,
    `files up to ${binaryBytes(limits.file_bytes)}`,
    `${limits.open_files} open files`,
    limits.cpu_seconds != null ? `CPU ${duration(limits.cpu_seconds)}` : null,
  ];
  return [
    `Landlock: ${level.landlock_abi != null ? `ABI ${level.landlock_abi}` : 'not enforced'}`,
    `seccomp filter: ${level.seccomp ? 'on' : 'off'}`,
    `network namespace: ${level.network_namespace ? 'its own' : 'none'}`,
    `limits: ${caps ? caps.filter(Boolean).join(', ') : 'none'}`,
    ...(level.missing ?? []).map((why) => `missing: ${why}`),
  ];
}

function sandboxCell(id, level) {
  if (!level) {
    return h('span', { class: 'hint', title: 'this worker reported no sandbox level', text: '–' });
  }
  if (!level.enabled) {
    return h('span', { title: 'its engine processes run without a sandbox (worker.sandbox = false)', text: 'off' });
  }
  const lines = sandboxLines(level);
  return h(
    'details',
    {
      class: 'sandbox',
      title: lines.join('\n'),
      open: opened.has(id),
      ontoggle: (e) => (e.target.open ? opened.add(id) : opened.delete(id)),
    },
    h('summary', { text: sandboxSummary(level) }),
    h('ul', {}, lines.map((line) => h('li', { class: line.startsWith('missing: ') ? 'missing' : null, text: line }))),
  );
}

function row(w) {
  const busy = h(
    'div',
    {
      class: 'bar slots',
      role: 'meter',
      'aria-valuemin': '0',
      'aria-valuemax': String(w.slots),
      'aria-valuenow': String(w.busy),
      'aria-label': `${w.busy} of ${w.slots} slots busy`,
    },
    h('div', { class: 'fill' }),
  );
  busy.firstElementChild.style.width = `${w.slots ? (100 * w.busy) / w.slots : 0}%`;
  const seen = parseTime(w.last_seen);
  const cells = [
    ['Worker', h('code', { text: w.id })],
    ['Host', w.host],
    ['State', badge(w.state)],
    ['Slots', h('span', { class: 'slot-cell' }, busy, h('span', { text: `${w.busy} / ${w.slots}` }))],
    [
      'Running jobs',
      w.running.length
        ? h('ul', { class: 'running-jobs' }, w.running.map((id) => h('li', {}, h('a', { href: jobHref(id), text: id }))))
        : h('span', { class: 'hint', text: 'idle' }),
    ],
    ['Last seen', h('time', { datetime: w.last_seen, title: clock(seen), text: ago(seen) })],
    ['Version', w.version],
    ['Sandbox', sandboxCell(w.id, w.sandbox)],
  ];
  return h(
    'tr',
    { dataset: { id: w.id, state: w.state } },
    cells.map(([label, content]) => h('td', { 'data-label': label }, content)),
  );
}

function render() {
  els.body.replaceChildren(...workers.map(row));
  els.empty.hidden = workers.length > 0;
  els.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function refresh() {
  try {
    workers = await api.get('/v1/workers');
    workers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (visible) render();
  } catch (e) {
    if (e.status !== 401 && visible) els.updated.textContent = `could not refresh: ${e.message}`;
  }
}
const refreshSoon = debounce(refresh, 300);

export function init() {
  els = {
    view: document.getElementById('view-workers'),
    body: document.getElementById('workers-body'),
    empty: document.getElementById('workers-empty'),
    updated: document.getElementById('workers-updated'),
  };
  feed.on('worker', () => visible && refreshSoon());
  // A job starting or ending changes a worker's running list.
  feed.on('status', () => visible && refreshSoon());
  feed.on('resync', () => visible && refreshSoon());
}

/** Shows or hides the view; shown, it refreshes every 5 s. */
export function show(on) {
  els.view.hidden = !on;
  if (on === visible) return;
  visible = on;
  clearInterval(timer);
  if (on) {
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
}
