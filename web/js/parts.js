// parts.js — a split job's parts in its detail: a strip with one segment per video part, as
// wide as the part's share of the input and coloured by its state (a running part fills in as
// it goes), then one mark each for the audio and the assembly. Every segment and mark says
// what it is (range, state, attempt, worker) in its tooltip, its aria-label, and the line
// under the strip when hovered or focused; a summary counts the parts by state. Updated in
// place from the job document's `parts`, so hover and focus survive live changes.

import { h, isActive } from './util.js';

const KIND_NAMES = { audio: 'Audio', assemble: 'Assembly' };

/** A time on the input's timeline as h:mm:ss ("0:01:30"). */
export function hms(seconds) {
  const s = Math.max(0, Math.round(Number.isFinite(seconds) ? seconds : 0));
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${Math.floor(s / 3600)}:${mm}:${ss}`;
}

/** How far a part is, 0 to 100: a finished one is whole, a waiting one empty. */
function percentOf(part) {
  if (part.status === 'succeeded') return 100;
  if (!isActive(part.status)) return 0;
  return Math.max(0, Math.min(100, part.progress?.percent ?? 0));
}

function stateText(part) {
  return isActive(part.status) ? `${part.status} ${percentOf(part).toFixed(0)} %` : part.status;
}

/** What a part is, in one sentence: its name, range, state, attempt and worker. */
export function describe(part) {
  const name = part.kind === 'video' ? `Part ${part.seq}` : KIND_NAMES[part.kind] ?? part.kind;
  const bits = [
    `${name}, ${hms(part.start_seconds)}–${hms(part.end_seconds)}: ${stateText(part)}`,
  ];
  if (part.attempt) bits.push(`attempt ${part.attempt}`);
  if (part.worker) bits.push(`worker ${part.worker}`);
  if (part.error) bits.push(`${part.error.code}: ${part.error.message}`);
  return bits.join(', ');
}

/** Counts of the video parts by state, in a fixed order: "2 succeeded · 1 running · 1 queued". */
function summary(video) {
  const order = ['succeeded', 'running', 'cancelling', 'queued', 'failed', 'cancelled'];
  const counts = new Map();
  for (const p of video) counts.set(p.status, (counts.get(p.status) ?? 0) + 1);
  const known = order.filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`);
  const other = [...counts.keys()].filter((s) => !order.includes(s)).map((s) => `${counts.get(s)} ${s}`);
  return `${video.length} video parts: ${[...known, ...other].join(' · ')}`;
}

/** One segment or mark: its element, its progress fill and its classes besides the state's. */
function piece(part, base) {
  const fill = h('span', { class: 'part-fill' });
  const el = h('span', { class: base, role: 'listitem', tabindex: '0' }, fill);
  el.dataset.seq = String(part.seq);
  el.dataset.kind = part.kind;
  return { el, fill, base };
}

function paint({ el, fill, base }, part) {
  const text = describe(part);
  el.className = `${base} st-${part.status}`;
  el.dataset.status = part.status;
  el.dataset.percent = percentOf(part).toFixed(1);
  el.dataset.worker = part.worker ?? '';
  el.title = text;
  el.setAttribute('aria-label', text);
  // The fill shows a running part's progress; a finished part's colour says the rest.
  fill.style.width = isActive(part.status) ? `${percentOf(part)}%` : '0';
}

/** The layout of a list of parts: rebuilt only when it changes (a new plan). */
function shape(parts) {
  return parts.map((p) => `${p.seq}:${p.kind}:${p.start_seconds}:${p.end_seconds}`).join(',');
}

/** The parts view of a job's detail: `{el, update(parts)}`; hidden while there are none. */
export function createParts() {
  const strip = h('div', { class: 'parts-strip', role: 'list', 'aria-label': 'Video parts' });
  const steps = h('div', { class: 'parts-steps', role: 'list', 'aria-label': 'Audio and assembly' });
  const info = h('p', { class: 'part-info', 'aria-live': 'polite' });
  const count = h('p', { class: 'hint parts-summary' });
  const el = h('div', { class: 'parts' }, h('div', { class: 'parts-row' }, strip, steps), info, count);
  let pieces = new Map();
  let layout = '';
  let parts = [];
  let pointed = null;

  const showInfo = () => {
    const part = parts.find((p) => String(p.seq) === pointed);
    info.textContent = part ? describe(part) : 'Hover over or focus a part for its worker and range.';
  };
  const point = (e) => {
    const target = e.target.closest?.('[data-seq]');
    if (target && el.contains(target)) pointed = target.dataset.seq;
    else if (e.type === 'mouseleave' || e.type === 'focusout') pointed = null;
    showInfo();
  };
  for (const type of ['mouseover', 'focusin']) el.addEventListener(type, point);
  for (const type of ['mouseleave', 'focusout']) el.addEventListener(type, point);

  function build() {
    pieces = new Map();
    const video = parts.filter((p) => p.kind === 'video');
    strip.replaceChildren(
      ...video.map((p) => {
        const seg = piece(p, 'part-seg');
        // Flex grows in proportion to the part's length: widths follow the durations.
        seg.el.style.flexGrow = String(Math.max(0.001, p.end_seconds - p.start_seconds));
        pieces.set(p.seq, seg);
        return seg.el;
      }),
    );
    steps.replaceChildren(
      ...parts
        .filter((p) => p.kind !== 'video')
        .map((p) => {
          const mark = piece(p, `part-step step-${p.kind}`);
          pieces.set(p.seq, mark);
          return mark.el;
        }),
    );
    strip.setAttribute('aria-label', `${video.length} video parts`);
    // Hundreds of parts still fit a phone's width with thinner gaps.
    strip.classList.toggle('dense', video.length > 40);
  }

  function update(next) {
    parts = next ?? [];
    el.hidden = parts.length === 0;
    if (!parts.length) return;
    if (shape(parts) !== layout) {
      layout = shape(parts);
      build();
    }
    for (const p of parts) {
      const entry = pieces.get(p.seq);
      if (entry) paint(entry, p);
    }
    count.textContent = summary(parts.filter((p) => p.kind === 'video'));
    showInfo();
  }

  return { el, update };
}
