// events.js — the farm-wide live feed: one EventSource on /v1/events shared by every view.
// Views subscribe to `status` ({id, status}), `progress` ({id, progress}), `worker` ({id}) and
// `resync` (changes were missed: fetch again). Owns reconnecting — a reconnect counts as a
// resync, since changes made while disconnected were not seen — and the "live" indicator.

import { withToken } from './api.js';

const KINDS = ['status', 'progress', 'worker', 'resync'];
const listeners = new Map(KINDS.map((k) => [k, new Set()]));
let source = null;
let seenHello = false;
let retryTimer = 0;
let running = false;

/** Calls `fn(data)` for each event of `kind`; returns the unsubscribe function. */
export function on(kind, fn) {
  listeners.get(kind).add(fn);
  return () => listeners.get(kind).delete(fn);
}

function emit(kind, data) {
  for (const fn of listeners.get(kind)) {
    try {
      fn(data);
    } catch (e) {
      console.warn(`a ${kind} listener failed`, e);
    }
  }
}

function indicate(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.hidden = false;
  el.dataset.state = state;
  el.querySelector('.live-text').textContent =
    state === 'live' ? 'live' : state === 'down' ? 'reconnecting…' : 'connecting…';
  el.title =
    state === 'live'
      ? 'Receiving changes as they happen'
      : 'The live feed is down; trying again';
}

function parse(e) {
  try {
    return JSON.parse(e.data);
  } catch {
    return null;
  }
}

function connect() {
  source = new EventSource(withToken('/v1/events'));
  source.addEventListener('hello', () => {
    indicate('live');
    if (seenHello) emit('resync', { reconnected: true });
    seenHello = true;
  });
  for (const kind of KINDS) {
    source.addEventListener(kind, (e) => {
      const data = parse(e);
      if (data) emit(kind, data);
    });
  }
  source.addEventListener('error', () => {
    indicate('down');
    // The browser retries by itself unless the answer was not an event stream (a 401, a
    // proxy's error page): then it gives up, and we try again later.
    if (source?.readyState === EventSource.CLOSED && running) {
      source = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => running && connect(), 5000);
    }
  });
}

/** Opens the feed (again after `stop`). */
export function start() {
  if (running) return;
  running = true;
  seenHello = false;
  indicate('connecting');
  connect();
}

/** Closes the feed (the token form is showing). */
export function stop() {
  running = false;
  clearTimeout(retryTimer);
  source?.close();
  source = null;
  const el = document.getElementById('live');
  if (el) el.hidden = true;
}
