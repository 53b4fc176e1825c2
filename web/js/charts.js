// charts.js — hand-drawn SVG charts, no library: the last hour's throughput (jobs ended per
// minute, stacked succeeded / failed / cancelled) and queue depth (queued and running) from
// /v1/stats, refreshed every 15 s while the Jobs view shows; and a running job's encode speed
// (fps and speed over time, from the progress events the detail view has received). Charts
// are drawn at their element's pixel width, so text stays legible on a phone.

import * as api from './api.js';
import { svg } from './util.js';

const PAD = { left: 36, right: 10, top: 10, bottom: 22 };
const REFRESH_MS = 15000;

let overviewTimer = 0;
let lastStats = null;
let resizeObserver = null;

/** The smallest of 1, 2, 5 × 10^k at or above `v` (at least 1): a round axis maximum. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 5, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

function formatValue(v) {
  return v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}

function hhmm(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Sizes the drawing to the SVG's box (set by the stylesheet) and returns the plot area. */
function canvas(el) {
  const box = el.getBoundingClientRect();
  const width = Math.max(240, Math.round(box.width || 480));
  const height = Math.max(80, Math.round(box.height || 140));
  el.setAttribute('viewBox', `0 0 ${width} ${height}`);
  el.replaceChildren();
  return {
    width,
    height,
    x0: PAD.left,
    x1: width - PAD.right,
    y0: height - PAD.bottom,
    y1: PAD.top,
  };
}

/** Horizontal grid lines with their values on the left (or right) axis. */
function grid(el, area, max, { side = 'left', unit = '' } = {}) {
  for (const f of [0, 0.5, 1]) {
    const y = area.y0 - f * (area.y0 - area.y1);
    if (side === 'left') {
      el.append(svg('line', { class: 'grid', x1: area.x0, x2: area.x1, y1: y, y2: y }));
    }
    el.append(
      svg('text', {
        class: 'axis',
        x: side === 'left' ? area.x0 - 6 : area.x1 + 2,
        y: y + 4,
        'text-anchor': side === 'left' ? 'end' : 'start',
        text: `${formatValue(max * f)}${unit}`,
      }),
    );
  }
}

function timeLabels(el, area, from, to) {
  const labels = [
    [area.x0, from, 'start'],
    [(area.x0 + area.x1) / 2, (from + to) / 2, 'middle'],
    [area.x1, to, 'end'],
  ];
  for (const [x, t, anchor] of labels) {
    el.append(svg('text', { class: 'axis', x, y: area.height - 6, 'text-anchor': anchor, text: hhmm(t) }));
  }
}

function message(el, area, text) {
  el.append(
    svg('text', {
      class: 'axis empty-note',
      x: (area.x0 + area.x1) / 2,
      y: (area.y0 + area.y1) / 2,
      'text-anchor': 'middle',
      text,
    }),
  );
}

function polyline(points, cls) {
  return svg('polyline', {
    class: cls,
    fill: 'none',
    points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '),
  });
}

/** Jobs ended per minute, stacked by outcome. */
function throughputChart(el, minutes) {
  const area = canvas(el);
  const kinds = ['succeeded', 'failed', 'cancelled'];
  const total = (m) => m.succeeded + m.failed + m.cancelled;
  const max = niceMax(Math.max(0, ...minutes.map(total)));
  grid(el, area, max);
  const slot = (area.x1 - area.x0) / Math.max(1, minutes.length);
  const scale = (area.y0 - area.y1) / max;
  const sums = Object.fromEntries(kinds.map((k) => [k, 0]));
  minutes.forEach((m, i) => {
    const at = Date.parse(m.at);
    let y = area.y0;
    const group = svg('g', { class: 'minute' }, svg('title', {
      text: `${hhmm(at)}: ${m.succeeded} succeeded, ${m.failed} failed, ${m.cancelled} cancelled`,
    }));
    // A transparent full-height target, so the minute's tooltip is easy to hover.
    group.append(svg('rect', { class: 'hit', x: area.x0 + i * slot, y: area.y1, width: slot, height: area.y0 - area.y1 }));
    for (const kind of kinds) {
      sums[kind] += m[kind];
      if (!m[kind]) continue;
      const height = m[kind] * scale;
      y -= height;
      group.append(
        svg('rect', {
          class: `s-${kind}`,
          x: (area.x0 + i * slot + slot * 0.12).toFixed(1),
          y: y.toFixed(1),
          width: Math.max(1, slot * 0.76).toFixed(1),
          height: height.toFixed(1),
        }),
      );
    }
    el.append(group);
  });
  if (minutes.length) timeLabels(el, area, Date.parse(minutes[0].at), Date.parse(minutes.at(-1).at) + 60000);
  const ended = sums.succeeded + sums.failed + sums.cancelled;
  el.setAttribute(
    'aria-label',
    `${ended} jobs ended in the last hour: ${sums.succeeded} succeeded, ${sums.failed} failed, ${sums.cancelled} cancelled`,
  );
  el.dataset.ended = String(ended);
}

/** Queued and running jobs over the last hour (sampled every 10 s by the server). */
function queueChart(el, samples, now = Date.now()) {
  const area = canvas(el);
  const from = now - 3600000;
  const points = samples.map((s) => ({ t: Date.parse(s.at), queued: s.queued, running: s.running }));
  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.queued, p.running))));
  grid(el, area, max);
  timeLabels(el, area, from, now);
  const x = (t) => area.x0 + ((t - from) / (now - from)) * (area.x1 - area.x0);
  const y = (v) => area.y0 - (v / max) * (area.y0 - area.y1);
  if (points.length < 2) message(el, area, 'Sampling every 10 s…');
  for (const kind of ['queued', 'running']) {
    const line = points.map((p) => [x(p.t), y(p[kind])]);
    if (line.length >= 2) el.append(polyline(line, `line s-${kind}`));
    const last = line.at(-1);
    if (last) el.append(svg('circle', { class: `dot-${kind} s-${kind}`, cx: last[0], cy: last[1], r: 3 }));
  }
  const last = points.at(-1);
  el.setAttribute(
    'aria-label',
    last ? `Queue depth now: ${last.queued} queued, ${last.running} running` : 'Queue depth: no samples yet',
  );
}

/** A running job's fps (left axis) and speed (right axis) over the time the page watched it. */
export function speedChart(el, samples) {
  const area = canvas(el);
  area.x1 -= 26;
  if (samples.length < 2) {
    message(el, area, 'Encode speed appears as progress arrives…');
    el.setAttribute('aria-label', 'Encode speed: waiting for progress');
    return;
  }
  const from = samples[0].t;
  const to = Math.max(samples.at(-1).t, from + 10000);
  const maxFps = niceMax(Math.max(...samples.map((s) => s.fps ?? 0)));
  const maxSpeed = niceMax(Math.max(...samples.map((s) => s.speed ?? 0)));
  grid(el, area, maxFps);
  grid(el, area, maxSpeed, { side: 'right', unit: '×' });
  timeLabels(el, area, from, to);
  const x = (t) => area.x0 + ((t - from) / (to - from)) * (area.x1 - area.x0);
  const y = (v, max) => area.y0 - (v / max) * (area.y0 - area.y1);
  const fps = samples.filter((s) => s.fps != null).map((s) => [x(s.t), y(s.fps, maxFps)]);
  const speed = samples.filter((s) => s.speed != null).map((s) => [x(s.t), y(s.speed, maxSpeed)]);
  if (fps.length >= 2) el.append(polyline(fps, 'line s-fps'));
  if (speed.length >= 2) el.append(polyline(speed, 'line s-speed'));
  el.append(
    svg('text', { class: 'axis legend-fps', x: area.x0 + 4, y: area.y1 + 10, text: 'fps' }),
    svg('text', { class: 'axis legend-speed', x: area.x1 - 4, y: area.y1 + 10, 'text-anchor': 'end', text: 'speed' }),
  );
  const last = samples.at(-1);
  el.setAttribute(
    'aria-label',
    `Encode speed: ${last.fps != null ? `${last.fps.toFixed(0)} fps` : ''} ${last.speed != null ? `${last.speed.toFixed(1)}× real time` : ''}`,
  );
  el.dataset.samples = String(samples.length);
}

function drawOverview() {
  if (!lastStats) {
    for (const el of document.querySelectorAll('.overview svg')) message(el, canvas(el), 'Loading…');
    return;
  }
  throughputChart(document.querySelector('#chart-throughput svg'), lastStats.throughput);
  queueChart(document.querySelector('#chart-queue svg'), lastStats.queue);
}

async function refreshOverview() {
  try {
    lastStats = await api.get('/v1/stats');
    drawOverview();
  } catch {
    // Kept as last drawn; the next tick tries again.
  }
}

/** Draws the overview now and every 15 s until `stopOverview`. */
export function startOverview() {
  stopOverview();
  drawOverview();
  refreshOverview();
  overviewTimer = setInterval(refreshOverview, REFRESH_MS);
  if (!resizeObserver) {
    let width = 0;
    resizeObserver = new ResizeObserver((entries) => {
      const w = Math.round(entries[0].contentRect.width);
      if (w !== width) {
        width = w;
        requestAnimationFrame(drawOverview);
      }
    });
    resizeObserver.observe(document.querySelector('.overview'));
  }
}

export function stopOverview() {
  clearInterval(overviewTimer);
  overviewTimer = 0;
}
