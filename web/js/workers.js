// workers.js — the Workers view: every registered worker with its host, state (active,
// draining, lost), slots and busy slots, the jobs it runs (links to them), the age of its
// last heartbeat and its version. Refreshed on `worker` events and every 5 s while shown.

import * as api from './api.js';
import * as feed from './events.js';
import { ago, badge, clock, debounce, h, jobHref, parseTime } from './util.js';

const REFRESH_MS = 5000;

let els = null;
let timer = 0;
let visible = false;
let workers = [];

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
