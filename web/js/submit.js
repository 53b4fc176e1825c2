// submit.js — the New job panel: a local file (chosen or dropped) uploaded into a bucket with
// a progress bar (PUT /v1/buckets/B/objects/K through XMLHttpRequest), the jobs the trigger
// rules made and what they ignored and why; and presets to run on the uploaded object — or on
// an object already in the bucket — submitted as jobs (POST /v1/jobs).

import * as api from './api.js';
import { bytes, h, jobHref, toast } from './util.js';

let els = null;
let file = null;
/** The key last filled in automatically: replaced when another file is chosen. */
let autoKey = '';
let uploading = null;
let onSubmitted = () => {};

function chosenPresets() {
  return [...els.presets.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
}

/** The button says what will happen; the hint says why nothing can yet. */
function describe() {
  const presets = chosenPresets();
  const n = presets.length;
  const jobs = `${n} job${n === 1 ? '' : 's'}`;
  let label = 'Upload';
  let hint = '';
  if (file && n) label = `Upload and submit ${jobs}`;
  else if (!file && n) label = `Submit ${jobs}`;
  else if (!file) hint = 'Choose a file to upload, or presets to run on an object already in the bucket.';
  els.go.textContent = label;
  els.go.disabled = Boolean(uploading) || (!file && !n);
  els.hint.textContent = hint;
}

function setFile(f) {
  file = f;
  els.fileName.textContent = f
    ? `${f.name} (${bytes(f.size)})`
    : 'No file chosen: jobs run on an object already in the bucket.';
  els.drop.classList.toggle('has-file', Boolean(f));
  if (f && (els.key.value === '' || els.key.value === autoKey)) {
    autoKey = `in/${f.name}`;
    els.key.value = autoKey;
  }
  describe();
}

function jobItem(job, note) {
  return h(
    'li',
    {},
    h('a', { href: jobHref(job.id), text: job.id }),
    ` ${job.preset} · ${job.status}`,
    note ? h('span', { class: 'hint', text: ` ${note}` }) : null,
  );
}

function list(title, items, cls = '') {
  if (!items.length) return null;
  return h('div', { class: `result-group ${cls}` }, h('h3', { text: title }), h('ul', {}, items));
}

function showProgress(loaded, total) {
  const percent = total ? (100 * loaded) / total : 0;
  els.bar.value = percent;
  els.bar.setAttribute('aria-valuetext', `${percent.toFixed(0)} %`);
  els.progressText.textContent = `${percent.toFixed(0)} % · ${bytes(loaded)} of ${bytes(total)}`;
}

async function submit(e) {
  e.preventDefault();
  if (uploading) return;
  const bucket = els.bucket.value.trim();
  const key = els.key.value.trim().replace(/^\/+/, '');
  const presets = chosenPresets();
  if (!bucket || !key) {
    els.hint.textContent = 'A bucket and a key are needed.';
    (bucket ? els.key : els.bucket).focus();
    return;
  }
  if (!file && !presets.length) return;
  const groups = [];
  els.result.replaceChildren();
  let ruleJobs = [];
  try {
    if (file) {
      els.progress.hidden = false;
      els.abort.hidden = false;
      showProgress(0, file.size);
      uploading = api.upload(bucket, key, file, showProgress);
      describe();
      els.go.classList.add('busy');
      const answer = await uploading.done;
      ruleJobs = answer.jobs;
      groups.push(
        h('p', { class: 'ok-line', text: `Uploaded ${answer.bucket}/${answer.key} (${bytes(answer.bytes)}).` }),
        list('Jobs made by trigger rules', answer.jobs.map((j) => jobItem(j, j.created ? '' : '(already existed)')), 'rule-jobs'),
        list(
          'Ignored',
          answer.ignored.map((i) => h('li', {}, i.key ? h('code', { text: i.key }) : null, ` ${i.reason}`)),
          'ignored',
        ),
      );
      if (!answer.jobs.length && !presets.length) {
        groups.push(h('p', { class: 'hint', text: 'No rule made a job: choose presets to transcode it.' }));
      }
    }
    const made = [];
    const failed = [];
    const byRule = new Set(ruleJobs.map((j) => j.preset));
    const prefix = els.prefix.value.trim() || 'out/';
    for (const preset of presets) {
      if (byRule.has(preset)) continue;
      try {
        const job = await api.post('/v1/jobs', {
          input: { bucket, key },
          preset,
          // Several presets may write the same file name: one folder each.
          output: { prefix: presets.length > 1 ? `${prefix.replace(/\/?$/, '/')}${preset}/` : prefix },
        });
        made.push(jobItem(job));
        onSubmitted(job);
      } catch (err) {
        if (err.status === 401) return;
        failed.push(h('li', {}, h('strong', { text: preset }), `: ${err.message}`));
      }
    }
    const skipped = presets.filter((p) => byRule.has(p));
    groups.push(
      list('Jobs submitted with the chosen presets', made, 'preset-jobs'),
      list('Not submitted', failed, 'preset-errors'),
      skipped.length
        ? h('p', { class: 'hint', text: `Already made by a rule: ${skipped.join(', ')}.` })
        : null,
    );
    els.result.replaceChildren(...groups.filter(Boolean));
    const total = ruleJobs.length + made.length;
    const news = total === 1 ? '1 job on its way' : total ? `${total} jobs on their way` : 'Done';
    toast(news, { kind: failed.length ? 'error' : 'ok' });
  } catch (err) {
    if (err.status === 401) return;
    els.result.replaceChildren(
      ...groups.filter(Boolean),
      h('p', { class: 'form-error', role: 'alert', text: `${file ? 'Upload failed' : 'Failed'}: ${err.message}` }),
    );
    if (err.code !== 'aborted') toast(err.message, { kind: 'error' });
  } finally {
    uploading = null;
    els.abort.hidden = true;
    els.go.classList.remove('busy');
    describe();
  }
}

/**
 * A file dropped on the panel is chosen; dropped anywhere else on the page, it opens the panel
 * with it (instead of the browser leaving the page to show the file).
 */
function bindDrop() {
  const zone = els.panel;
  const over = (on) => els.drop.classList.toggle('dragging', on);
  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  const usable = () => !document.getElementById('main').hidden;
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e) || !usable()) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    over(zone.contains(e.target));
  });
  zone.addEventListener('dragleave', (e) => {
    if (!zone.contains(e.relatedTarget)) over(false);
  });
  document.addEventListener('drop', (e) => {
    over(false);
    const dropped = e.dataTransfer?.files?.[0];
    if (!dropped || !usable()) return;
    e.preventDefault();
    if (els.panel.hidden) toggle(true);
    setFile(dropped);
  });
}

async function loadPresets() {
  try {
    const presets = await api.presets();
    els.presets.replaceChildren(
      ...presets.map((p) =>
        h(
          'label',
          { class: 'preset' },
          h('input', { type: 'checkbox', value: p.name, name: 'preset' }),
          h('span', {}, h('strong', { text: p.name }), h('span', { class: 'hint', text: p.description })),
        ),
      ),
    );
  } catch (e) {
    if (e.status !== 401) els.presets.replaceChildren(h('p', { class: 'form-error', text: e.message }));
  }
}

/** Opens or closes the panel (the New job button). */
export function toggle(open = els.panel.hidden) {
  els.panel.hidden = !open;
  els.toggle.setAttribute('aria-expanded', String(open));
  if (open) {
    loadPresets();
    els.file.focus();
  } else {
    els.toggle.focus();
  }
}

export function isOpen() {
  return els && !els.panel.hidden;
}

/** Wires the panel; `submitted(job)` hears of each job submitted with a chosen preset. */
export function init({ submitted }) {
  const $ = (id) => document.getElementById(id);
  els = {
    panel: $('submit-panel'),
    toggle: $('submit-toggle'),
    form: $('submit-form'),
    drop: $('drop'),
    file: $('file'),
    fileName: $('file-name'),
    bucket: $('bucket'),
    key: $('key'),
    presets: $('preset-list'),
    prefix: $('out-prefix'),
    hint: $('submit-hint'),
    progress: $('upload-progress'),
    bar: $('upload-bar'),
    progressText: $('upload-text'),
    go: $('submit-go'),
    abort: $('submit-abort'),
    result: $('submit-result'),
  };
  onSubmitted = submitted;
  els.toggle.addEventListener('click', () => toggle());
  $('submit-close').addEventListener('click', () => toggle(false));
  els.file.addEventListener('change', () => setFile(els.file.files[0] ?? null));
  els.presets.addEventListener('change', describe);
  els.form.addEventListener('submit', submit);
  els.abort.addEventListener('click', () => uploading?.abort());
  bindDrop();
  describe();
}
