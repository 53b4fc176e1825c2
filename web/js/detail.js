// detail.js — one job in a side panel (#/jobs/ID): its status and actions, live progress with
// the encode-speed chart, a split job's parts (parts.js), the error (code and message), the outputs with download links, the
// attempts (worker, phase timings, CPU seconds, peak memory), the event timeline, the log
// (tailed every second while the job runs), and the spec and trigger payload as JSON. Live
// from the job's own event stream, /v1/jobs/ID/events (`job`, then `progress` and `parts`).

import * as api from './api.js';
import { createActions } from './actions.js';
import { createParts } from './parts.js';
import { speedChart } from './charts.js';
import { createTerminal } from './terminal.js';
import { progressText } from './jobs.js';
import {
  badge,
  bytes,
  clock,
  dateTime,
  duration,
  h,
  isActive,
  isTerminal,
  parseTime,
  perFrame,
  svg,
} from './util.js';

const LOG_PAGE = 1000;
const PHASES = ['downloading', 'probing', 'measuring', 'transcoding', 'finalizing', 'uploading'];

let els = null;
/** The open job: {id, job, source, logNext, logTimer, samples, parts, …}, or null. */
let cur = null;
let onJob = () => {};

function section(title, ...children) {
  return h('section', { class: 'detail-section' }, h('h3', { text: title }), ...children);
}

function json(value) {
  return h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(value, null, 2) });
}

function spec(job) {
  return {
    id: job.id,
    input: job.input,
    preset: job.preset,
    output: job.output,
    priority: job.priority,
    max_attempts: job.max_attempts,
    timeout_seconds: job.timeout_seconds,
    on_success: job.on_success,
    on_failure: job.on_failure,
    overwrite: job.overwrite,
  };
}

/** The panel's parts, built once per job and filled as data arrives. */
function build(id) {
  const parts = {
    status: h('p', { class: 'status-line' }),
    progress: h('div', { class: 'progress-block' }),
    error: h('div', { class: 'error-box', role: 'alert' }),
    outputs: h('ul', { class: 'outputs' }),
    summary: h('dl', { class: 'summary' }),
    attempts: h('div', { class: 'table-wrap' }),
    timeline: h('ol', { class: 'timeline' }),
    log: h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Task log', 'aria-live': 'off' }),
    logState: h('span', { class: 'hint' }),
    spec: h('div'),
    trigger: h('div'),
  };
  parts.bar = h(
    'div',
    { class: 'bar big', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': 'Progress' },
    h('div', { class: 'fill' }),
  );
  parts.ptext = h('p', { class: 'ptext' });
  parts.chart = svg('svg', { class: 'speed-chart', role: 'img', 'aria-label': 'Encode speed' });
  parts.progress.append(parts.bar, parts.ptext, parts.chart);
  parts.actions = createActions((job) => {
    // An action's answer: show it now; the stream brings what follows (an answer may leave
    // the parts out: they keep showing until the stream's next job document).
    if (cur && job.id === cur.id) applyJob({ ...job, parts: job.parts ?? cur.job?.parts });
    onJob(job);
  });
  parts.terminal = createTerminal({
    onVisible: (shown) => {
      parts.terminalSection.hidden = !shown;
    },
  });
  parts.terminalSection = section('Terminal', parts.terminal.el);
  parts.terminalSection.hidden = true;
  parts.errorSection = section('Error', parts.error);
  parts.progressSection = section('Progress', parts.progress);
  parts.split = createParts();
  parts.splitSection = section('Parts', parts.split.el);
  parts.outputsSection = section('Outputs', parts.outputs);
  els.body.replaceChildren(
    parts.status,
    parts.actions.el,
    parts.progressSection,
    parts.splitSection,
    parts.terminalSection,
    parts.errorSection,
    parts.outputsSection,
    section('Job', parts.summary),
    section('Attempts', parts.attempts),
    section('Timeline', parts.timeline),
    section('Log', parts.logState, parts.log),
    section('Spec', parts.spec),
    section('Trigger', parts.trigger),
  );
  els.title.replaceChildren('Job ', h('code', { text: id }));
  return parts;
}

function summaryRows(job) {
  const started = parseTime(job.started_at);
  const finished = parseTime(job.finished_at);
  const rows = [
    ['Input', `${job.input.bucket}/${job.input.key}`],
    ['Preset', job.preset],
    ['Output', `${job.output.bucket}/${job.output.prefix}`],
    ['Created', dateTime(parseTime(job.created_at))],
    ['Started', job.started_at ? dateTime(started) : '–'],
    ['Finished', job.finished_at ? dateTime(finished) : '–'],
    ['Took', job.finished_at && job.started_at ? duration((finished - started) / 1000) : '–'],
    ['Priority', String(job.priority)],
    ['Time limit', duration(job.timeout_seconds)],
  ];
  if (job.on_success) rows.push(['On success', job.on_success]);
  if (job.on_failure) rows.push(['On failure', job.on_failure]);
  if (job.overwrite) rows.push(['Overwrite', "may replace other inputs' outputs"]);
  if (job.clip) rows.push(['Clip', `${job.clip.start ?? 0} s to ${job.clip.end != null ? `${job.clip.end} s` : 'the end'}`]);
  if (job.watermark) rows.push(['Watermark', `${job.watermark.bucket ?? job.input.bucket}/${job.watermark.key}`]);
  if (job.quality) rows.push(['Quality', 'SSIM and PSNR measured']);
  if (job.audio) rows.push(['Audio', `languages ${job.audio.languages.join(', ')}`]);
  return rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]);
}

/** What the check before success found of an output: length, streams, quality figures. */
function checkText(c) {
  const seen = [];
  if (c.duration_seconds != null) seen.push(`${c.duration_seconds.toFixed(2)} s`);
  seen.push(...c.streams);
  if (c.files) seen.push(`${c.files} files`);
  if (c.input_damage) seen.push(`${c.input_damage} damaged input packets or frames concealed`);
  for (const q of c.quality ?? []) {
    seen.push(`${q.rendition ? `${q.rendition} ` : ''}SSIM ${q.ssim.toFixed(4)} PSNR ${q.psnr_db.toFixed(2)} dB`);
  }
  return `checked: ${seen.join(', ')}`;
}

/** Everything that depends on the job row itself. */
function applyJob(job) {
  const before = cur.job;
  cur.job = job;
  const p = cur.parts;
  p.terminal.update(job);
  p.status.replaceChildren(
    badge(job.status),
    h('span', {
      text: ` attempt ${job.attempt || 0} of ${job.max_attempts}${job.worker ? ` · worker ${job.worker}` : ''}`,
    }),
  );
  p.actions.update(job);
  p.progressSection.hidden = !isActive(job.status);
  drawProgress();
  drawParts();
  p.errorSection.hidden = !job.error;
  if (job.error) {
    p.error.replaceChildren(
      h('p', {}, h('code', { class: 'error-code', text: job.error.code })),
      h('p', { class: 'error-message', text: job.error.message }),
      h('p', {
        class: 'hint',
        text: job.error.retryable
          ? 'Another attempt could succeed.'
          : 'Retrying will not help unless the input or preset changes.',
      }),
    );
  }
  p.outputsSection.hidden = job.outputs.length === 0;
  p.outputs.replaceChildren(
    ...job.outputs.map((o) =>
      h(
        'li',
        {},
        h('a', {
          href: api.downloadUrl(o.bucket, o.key),
          download: o.key.split('/').pop(),
          class: 'download',
          text: `${o.bucket}/${o.key}`,
        }),
        h('span', { class: 'hint', text: ` ${bytes(o.bytes)}${loudnessText(o.check)}` }),
        o.check ? h('span', { class: 'hint check', text: ` · ${checkText(o.check)}` }) : null,
      ),
    ),
  );
  p.summary.replaceChildren(...summaryRows(job));
  p.spec.replaceChildren(json(spec(job)));
  p.trigger.replaceChildren(
    job.trigger
      ? h('div', {}, h('p', { class: 'hint', text: `source: ${job.trigger.source}` }), json(job.trigger.payload))
      : h('p', { class: 'hint', text: 'Submitted without a trigger.' }),
  );
  const moved = !before || before.status !== job.status || before.attempt !== job.attempt;
  if (moved) {
    loadHistory();
    loadLogs();
    if (before && before.attempt !== job.attempt) cur.samples = [];
  }
  followLogs();
  if (isTerminal(job.status)) {
    cur.source?.close();
    cur.source = null;
  } else if (!cur.source) {
    connect();
  }
}

const drawProgress = perFrame(() => {
  if (!cur?.job) return;
  const { job, parts } = cur;
  if (!isActive(job.status)) return;
  const percent = Math.max(0, Math.min(100, job.progress?.percent ?? 0));
  parts.bar.firstElementChild.style.width = `${percent}%`;
  parts.bar.setAttribute('aria-valuenow', percent.toFixed(1));
  parts.bar.dataset.percent = percent.toFixed(1);
  const phase = job.progress?.phase ?? 'starting';
  const text = progressText(job.progress);
  // Before the transcode the text is the phase itself ("downloading 91 %"): say it once.
  const p = job.progress;
  // What the task has used so far (the attempt's totals appear in Attempts when it ends).
  const usage = p?.cpu_seconds != null ? ` · CPU ${p.cpu_seconds.toFixed(1)} s · ${bytes(p.peak_memory_bytes)} peak` : '';
  parts.ptext.textContent = `${text.startsWith(phase) ? text : `${phase} · ${text}`}${
    p?.frames ? ` · ${p.frames} frames` : ''
  }${usage}`;
  speedChart(parts.chart, cur.samples);
});

/** " · loudness -31.2 → -16.0 LUFS, -1.6 dBTP (linear)" per normalised audio stream. */
function loudnessText(check) {
  return (check?.loudness ?? [])
    .map(
      (l) =>
        ` · loudness ${l.input.integrated_lufs.toFixed(1)} → ${l.output.integrated_lufs.toFixed(1)} LUFS, ` +
        `${l.output.true_peak_dbtp.toFixed(1)} dBTP (${l.mode})`,
    )
    .join('');
}

function drawParts() {
  const parts = cur.job.parts ?? [];
  cur.parts.splitSection.hidden = parts.length === 0;
  cur.parts.split.update(parts);
}

function onPartsEvent(data) {
  if (!cur?.job || data.id !== cur.id) return;
  cur.job.parts = data.parts;
  drawParts();
}

function onProgressEvent(data) {
  if (!cur?.job || data.id !== cur.id) return;
  cur.job.progress = data.progress;
  if (cur.job.status !== data.status) applyJob({ ...cur.job, status: data.status });
  const p = data.progress;
  if (p && p.phase === 'transcoding' && (p.fps != null || p.speed != null)) {
    cur.samples.push({ t: Date.now(), fps: p.fps ?? null, speed: p.speed ?? null });
    if (cur.samples.length > 3600) cur.samples.shift();
  }
  drawProgress();
}

function connect() {
  const id = cur.id;
  const source = new EventSource(api.withToken(api.jobPath(id, '/events')));
  cur.source = source;
  const parse = (e) => {
    try {
      return JSON.parse(e.data);
    } catch {
      return null;
    }
  };
  source.addEventListener('job', (e) => {
    const job = parse(e);
    if (job && cur?.source === source) {
      applyJob(job);
      onJob(job);
    }
  });
  source.addEventListener('progress', (e) => {
    const data = parse(e);
    if (data && cur?.source === source) onProgressEvent(data);
  });
  source.addEventListener('parts', (e) => {
    const data = parse(e);
    if (data && cur?.source === source) onPartsEvent(data);
  });
  source.addEventListener('error', () => {
    // The stream ends with the job; the browser would reconnect by itself. Only a stream
    // refused outright (CLOSED) is reopened here, later, while the job still runs.
    if (source.readyState === EventSource.CLOSED && cur?.source === source) {
      cur.source = null;
      setTimeout(() => {
        if (cur?.id === id && !cur.source && !isTerminal(cur.job?.status)) connect();
      }, 3000);
    }
  });
}

// --- history ---------------------------------------------------------------------------

function phaseText(phases) {
  const known = PHASES.filter((k) => phases[k] != null).map((k) => `${k} ${duration(phases[k])}`);
  const other = Object.keys(phases)
    .filter((k) => !PHASES.includes(k))
    .map((k) => `${k} ${duration(phases[k])}`);
  return [...known, ...other].join(' · ') || '–';
}

function attemptsTable(attempts) {
  if (!attempts.length) return h('p', { class: 'hint', text: 'Not started yet.' });
  const head = ['#', 'Worker', 'Started', 'Took', 'Outcome', 'Phases', 'CPU', 'Peak memory', 'Log'];
  return h(
    'table',
    { class: 'attempts' },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col', text: t })))),
    h(
      'tbody',
      {},
      attempts.map((a) => {
        const took = a.finished_at ? (parseTime(a.finished_at) - parseTime(a.started_at)) / 1000 : null;
        const cells = [
          String(a.attempt),
          a.worker ?? '–',
          dateTime(parseTime(a.started_at)),
          took == null ? 'running' : duration(took),
          a.outcome ? `${a.outcome}${a.error ? ` (${a.error.code})` : ''}` : '–',
          phaseText(a.stats?.phases ?? {}),
          a.stats?.cpu_seconds != null ? `${a.stats.cpu_seconds.toFixed(1)} s` : '–',
          a.stats?.peak_memory_bytes != null ? bytes(a.stats.peak_memory_bytes) : '–',
          `${a.log_lines} lines${a.log_dropped ? `, ${a.log_dropped} dropped` : ''}`,
        ];
        return h('tr', {}, cells.map((c, i) => h('td', { 'data-label': head[i], text: c })));
      }),
    ),
  );
}

function timelineItem(e) {
  const what = e.kind === 'status' ? [e.from ? badge(e.from) : null, e.from ? ' → ' : '', e.to ? badge(e.to) : null] : [h('strong', { text: e.kind })];
  const at = parseTime(e.at);
  return h(
    'li',
    {},
    h('time', { datetime: e.at, title: dateTime(at), text: clock(at) }),
    h('span', { class: 'what' }, what),
    h('span', { class: 'why', text: e.reason }),
    h('span', {
      class: 'hint',
      text: [e.attempt ? `attempt ${e.attempt}` : '', e.worker ? `worker ${e.worker}` : ''].filter(Boolean).join(' · '),
    }),
    e.detail ? h('details', {}, h('summary', { text: 'detail' }), json(e.detail)) : null,
  );
}

async function loadHistory() {
  const open = cur;
  try {
    const history = await api.get(api.jobPath(open.id, '/history'));
    if (cur !== open) return;
    open.parts.attempts.replaceChildren(attemptsTable(history.attempts));
    open.parts.timeline.replaceChildren(...history.events.map(timelineItem));
  } catch (e) {
    if (cur === open && e.status !== 401) {
      open.parts.timeline.replaceChildren(h('li', { class: 'form-error', text: e.message }));
    }
  }
}

// --- log -------------------------------------------------------------------------------

async function loadLogs() {
  const open = cur;
  if (!open || open.logBusy) return;
  open.logBusy = true;
  try {
    for (;;) {
      const page = await api.get(api.jobPath(open.id, '/logs'), { after: open.logNext, limit: LOG_PAGE });
      if (cur !== open) return;
      const log = open.parts.log;
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
      const text = page.lines
        .map((l) => `${clock(parseTime(l.at))}  a${l.attempt}  ${l.line}\n`)
        .join('');
      if (text) log.append(text);
      open.logNext = page.next;
      open.logLines += page.lines.length;
      if (atBottom) log.scrollTop = log.scrollHeight;
      if (page.lines.length < LOG_PAGE) break;
    }
    open.parts.log.hidden = open.logLines === 0;
    open.parts.logState.textContent = open.logLines
      ? ''
      : isTerminal(open.job?.status)
        ? 'The task wrote no log.'
        : 'No log lines yet.';
  } catch (e) {
    if (cur === open && e.status !== 401) open.parts.logState.textContent = `Could not read the log: ${e.message}`;
  } finally {
    open.logBusy = false;
  }
}

/** Tails the log every second while the job can still write to it. */
function followLogs() {
  const open = cur;
  const live = open.job && !isTerminal(open.job.status);
  if (live && !open.logTimer) {
    open.logTimer = setInterval(loadLogs, 1000);
  } else if (!live && open.logTimer) {
    clearInterval(open.logTimer);
    open.logTimer = 0;
    // Lines written just before the end may land after the status: read once more.
    setTimeout(() => cur === open && loadLogs(), 1500);
  }
}

// --- open and close --------------------------------------------------------------------

/** Opens the panel on job `id` (from the route). */
export async function open(id) {
  if (cur?.id === id) return;
  close();
  els.panel.hidden = false;
  document.body.classList.add('detail-open');
  const parts = build(id);
  cur = { id, job: null, parts, source: null, logNext: 0, logLines: 0, logTimer: 0, logBusy: false, samples: [] };
  const opened = cur;
  parts.status.replaceChildren(h('span', { class: 'hint', text: 'Loading…' }));
  els.title.focus();
  try {
    const job = await api.get(api.jobPath(id));
    if (cur !== opened) return;
    applyJob(job);
  } catch (e) {
    if (cur !== opened || e.status === 401) return;
    els.body.replaceChildren(
      h('p', { class: 'form-error', role: 'alert', text: e.status === 404 ? `There is no job ${id}.` : e.message }),
    );
  }
}

/** Closes the panel; the caller changes the route. */
export function close() {
  if (!cur) return;
  cur.parts?.terminal.close();
  cur.source?.close();
  clearInterval(cur.logTimer);
  cur = null;
  els.panel.hidden = true;
  document.body.classList.remove('detail-open');
  els.body.replaceChildren();
}

export function isOpen() {
  return cur !== null;
}

/** Wires the panel; `changed(job)` hears of every new state of the open job. */
export function init({ changed, onClose }) {
  els = {
    panel: document.getElementById('detail'),
    title: document.getElementById('detail-title'),
    body: document.getElementById('detail-body'),
  };
  onJob = changed;
  document.getElementById('detail-close').addEventListener('click', onClose);
}
