// util.js — small helpers every view shares: building DOM and SVG elements, formatting
// (times, ages, durations, sizes, numbers), toasts, and timing (debounce, one update per
// animation frame).

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (name === 'class') el.setAttribute('class', value);
    else if (name === 'text') el.textContent = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/'}, 'text', otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Milliseconds since the epoch from the API's RFC 3339 times (microseconds trimmed). */
export function parseTime(text) {
  if (!text) return NaN;
  return Date.parse(String(text).replace(/(\.\d{3})\d+/, '$1'));
}

const numberFormat = new Intl.NumberFormat();

export function number(n) {
  return numberFormat.format(n);
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function ago(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A length of time: "0.4 s", "42 s", "3 min 02 s", "1 h 05 min". */
export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** An ETA as a clock: "0:42", "12:05", "1:02:03". */
export function clockDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** "1.2 MB" (decimal units, as storage consoles show sizes). */
export function bytes(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A local date and time, for tooltips and the detail view. */
export function dateTime(ms) {
  return Number.isFinite(ms) ? new Date(ms).toLocaleString() : '–';
}

/** A local wall-clock time ("10:42:03"), for log lines and the timeline. */
export function clock(ms) {
  return Number.isFinite(ms) ? new Date(ms).toLocaleTimeString() : '';
}

/** Calls `fn` once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** A scheduler that runs `fn` at most once per animation frame, however often it is asked. */
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/** A message in the corner: kind "ok", "error" or "info"; errors stay longer. */
export function toast(message, { kind = 'info', link = null } = {}) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { text: message }),
    link ? h('a', { href: link.href, text: link.text }) : null,
    h('button', {
      type: 'button',
      class: 'icon',
      'aria-label': 'Dismiss',
      text: '✕',
      onclick: () => item.remove(),
    }),
  );
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 9000 : 5000);
}

/** Job statuses a worker holds. */
export function isActive(status) {
  return status === 'running' || status === 'cancelling';
}

export function isTerminal(status) {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** The job's route. */
export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}

/** A status badge. */
export function badge(status) {
  return h('span', { class: `badge st-${status}`, text: status });
}
