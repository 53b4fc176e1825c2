// actions.js — what an operator can do to a job: stop it (queued or running), retry it
// (failed or cancelled), or submit its input again with another preset. Each button shows at
// once that it is working (disabled, spinner), then a toast with the server's answer or its
// error message; the outcome itself arrives through the job's live stream.

import * as api from './api.js';
import { h, isTerminal, jobHref, toast } from './util.js';

/** Runs `work` with `button` showing it is busy; errors become toasts with the server's words. */
async function busy(button, work) {
  button.disabled = true;
  button.classList.add('busy');
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } catch (e) {
    if (e.status !== 401) toast(e.message, { kind: 'error' });
    return null;
  } finally {
    button.classList.remove('busy');
    button.removeAttribute('aria-busy');
    button.pending = false;
    button.disabled = false;
  }
}

/**
 * The action bar of a job. `onChange(job)` receives the job as an action's answer left it;
 * `update(job)` shows the buttons that make sense for the job's status.
 */
export function createActions(onChange) {
  let job = null;
  const stop = h('button', { type: 'button', class: 'danger', id: 'action-stop', text: 'Stop' });
  const retry = h('button', { type: 'button', id: 'action-retry', text: 'Retry' });
  const preset = h('select', { id: 'resubmit-preset', 'aria-label': 'Preset to resubmit with' });
  const resubmit = h('button', { type: 'button', id: 'action-resubmit', text: 'Resubmit' });
  const el = h(
    'div',
    { class: 'actions', role: 'group', 'aria-label': 'Job actions' },
    stop,
    retry,
    h('span', { class: 'resubmit' }, preset, resubmit),
  );

  stop.addEventListener('click', async () => {
    if (!job) return;
    stop.pending = true;
    const answer = await busy(stop, () =>
      api.post(api.jobPath(job.id, '/cancel'), { reason: 'stopped from the web page' }),
    );
    if (answer) {
      toast(
        answer.status === 'cancelled'
          ? `Job ${answer.id} cancelled`
          : `Stop requested: job ${answer.id} is ${answer.status}`,
        { kind: 'ok' },
      );
      onChange(answer);
    }
  });

  retry.addEventListener('click', async () => {
    if (!job) return;
    retry.pending = true;
    const answer = await busy(retry, () => api.post(api.jobPath(job.id, '/retry')));
    if (answer) {
      toast(`Job ${answer.id} queued again (attempt ${answer.attempt + 1})`, { kind: 'ok' });
      onChange(answer);
    }
  });

  resubmit.addEventListener('click', async () => {
    if (!job || !preset.value) return;
    resubmit.pending = true;
    const chosen = preset.value;
    const answer = await busy(resubmit, () =>
      api.post('/v1/jobs', {
        input: job.input,
        preset: chosen,
        // Beside the original outputs, never over them: presets may share an extension.
        output: { bucket: job.output.bucket, prefix: `${job.output.prefix}${chosen}/` },
      }),
    );
    if (answer) {
      toast(`Submitted ${answer.id} with ${chosen}`, {
        kind: 'ok',
        link: { href: jobHref(answer.id), text: 'Open' },
      });
      onChange(answer);
    }
  });

  api
    .presets()
    .then((list) => {
      preset.replaceChildren(
        ...list.map((p) => h('option', { value: p.name, title: p.description, text: p.name })),
      );
      if (job) update(job);
    })
    .catch(() => {
      resubmit.disabled = true;
    });

  function update(next) {
    const changedJob = job?.id !== next.id;
    job = next;
    const s = job.status;
    stop.hidden = isTerminal(s);
    if (!stop.pending) {
      stop.disabled = s === 'cancelling';
      stop.textContent = s === 'cancelling' ? 'Stopping…' : 'Stop';
    }
    retry.hidden = !(s === 'failed' || s === 'cancelled');
    if (changedJob && preset.options.length) {
      // Suggest another preset than the one the job ran.
      const other = [...preset.options].find((o) => o.value !== job.preset);
      preset.value = other ? other.value : job.preset;
    }
  }

  return { el, update };
}
