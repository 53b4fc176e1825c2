// terminal.js — the job detail's terminal panel: a shell inside the running task (exec),
// through the websocket /v1/jobs/ID/exec, drawn by xterm.js (from the npm registry, compiled
// into the binary and served under /assets/vendor/). Binary frames carry the terminal's
// bytes both ways; text frames are JSON control messages (resize from here; exit, notice,
// error from the server). The panel shows only where exec can open (GET /v1/info); a farm
// with exec's own token gets a field for it (kept for the session like the API's). When the
// socket cannot open, a plain GET of the same URL fetches the server's reason (exec off, no
// token, no task) to show it.

import * as api from './api.js';
import { h } from './util.js';

let vendor = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

/** xterm.js and its fit add-on, loaded once, on first use. */
function loadVendor() {
  if (!vendor) {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = '/assets/vendor/xterm.css';
    document.head.append(css);
    vendor = loadScript('/assets/vendor/xterm.js')
      .then(() => loadScript('/assets/vendor/addon-fit.js'))
      .then(() => ({ Terminal: window.Terminal, FitAddon: window.FitAddon.FitAddon }))
      .catch((e) => {
        vendor = null;
        throw new Error(`${e.message}: this ffarm was built without the web terminal`);
      });
  }
  return vendor;
}

/**
 * Why the server refused a session: {code, message} in its own words (null when it would
 * have upgraded).
 */
async function refusal(id) {
  const url = api.withExecToken(`/v1/jobs/${encodeURIComponent(id)}/exec`);
  const response = await fetch(url);
  if (response.status === 426) return null; // it would upgrade: the connection itself failed
  const fallback = { code: 'http', message: `the server answered ${response.status}` };
  try {
    const body = await response.json();
    return body.error?.message ? body.error : fallback;
  } catch {
    return fallback;
  }
}

/** Refusals that a different token would overcome. */
const TOKEN_REFUSALS = new Set(['unauthorized', 'exec-token-required']);

/**
 * The panel for one job: a button that opens the terminal, the terminal, and a status line.
 * `el` goes into the detail; `update(job)` shows or hides it; `close()` ends the session.
 */
export function createTerminal({ onVisible }) {
  const status = h('p', { class: 'hint', role: 'status' });
  const screen = h('div', { class: 'terminal', hidden: true, 'aria-label': 'Terminal in the task' });
  const button = h('button', { type: 'button', class: 'btn', text: 'Open terminal' });
  const tokenInput = h('input', {
    type: 'password',
    class: 'exec-token',
    autocomplete: 'off',
    'aria-label': 'Exec token',
    placeholder: 'exec token',
  });
  const tokenForm = h(
    'form',
    { class: 'exec-token-form', hidden: true },
    h('label', { text: 'This farm opens terminals with its own exec token: ' }, tokenInput),
  );
  const el = h('div', { class: 'terminal-panel' }, tokenForm, button, status, screen);
  let job = null;
  let session = null;
  /** What GET /v1/info says of exec (null until it has answered). */
  let exec = null;

  function askToken(message) {
    tokenForm.hidden = false;
    tokenInput.value = '';
    status.textContent = message;
    tokenInput.focus();
  }

  function showPanel() {
    if (!job || !exec) return;
    const live = job.status === 'running' || job.status === 'cancelling';
    // A failed attempt's workspace may still be kept for a while.
    el.hidden = !(exec.enabled && (live || job.status === 'failed' || session));
    if (!el.hidden && !session && exec.token === 'none') {
      button.hidden = true;
      status.textContent =
        'Exec is on, but this farm has no token for it: set `token` or `[exec] token` in ffarm.toml.';
    } else if (!el.hidden && !session && exec.token === 'exec' && !api.hasExecToken()) {
      if (tokenForm.hidden) askToken('');
    }
    onVisible(!el.hidden);
  }

  function end(message) {
    if (!session) return;
    const s = session;
    session = null;
    s.resizeObserver.disconnect();
    if (s.socket.readyState <= 1) s.socket.close();
    s.term.options.disableStdin = true;
    status.textContent = message;
    button.hidden = false;
    button.textContent = 'Open a new terminal';
  }

  async function open() {
    if (session || !job) return;
    if (exec?.token === 'exec' && !api.hasExecToken()) {
      const typed = tokenInput.value.trim();
      if (!typed) {
        askToken('Enter the exec token to open a terminal.');
        return;
      }
      api.setExecToken(typed);
    }
    button.disabled = true;
    status.textContent = 'Connecting…';
    try {
      const { Terminal, FitAddon } = await loadVendor();
      screen.hidden = false;
      screen.replaceChildren();
      const term = new Terminal({ cursorBlink: true, fontSize: 13, convertEol: false });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(screen);
      fit.fit();
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const query = `tty=true&cols=${term.cols}&rows=${term.rows}&user=web-page`;
      const url = api.withExecToken(
        `${scheme}://${location.host}/v1/jobs/${encodeURIComponent(job.id)}/exec?${query}`,
      );
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      const encoder = new TextEncoder();
      const resizeObserver = new ResizeObserver(() => {
        fit.fit();
        if (socket.readyState === 1) {
          socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
        }
      });
      session = { term, socket, resizeObserver, opened: false };
      const mine = session;
      socket.onopen = () => {
        mine.opened = true;
        tokenForm.hidden = true;
        status.textContent = `Shell in the task's workspace on ${job.worker || 'its worker'}.`;
        button.hidden = true;
        resizeObserver.observe(screen);
        term.focus();
      };
      socket.onmessage = (e) => {
        if (typeof e.data !== 'string') {
          term.write(new Uint8Array(e.data));
          return;
        }
        let msg = {};
        try {
          msg = JSON.parse(e.data);
        } catch {
          return;
        }
        if (msg.type === 'exit') end(`The shell exited with code ${msg.code}.`);
        else if (msg.type === 'notice') term.write(`\r\n\x1b[33m[${msg.message}]\x1b[0m\r\n`);
        else if (msg.type === 'error') end(msg.message);
        else if (msg.type === 'stderr') term.write(msg.data);
      };
      socket.onclose = async () => {
        if (session !== mine) return; // already ended (exit, error)
        if (mine.opened) {
          end('The session ended.');
          return;
        }
        screen.hidden = true;
        const why = await refusal(job.id).catch(() => null);
        end(why?.message || 'The connection failed.');
        if (why && TOKEN_REFUSALS.has(why.code) && exec?.token === 'exec') {
          api.forgetExecToken();
          askToken(`The exec token was refused: ${why.message}`);
        }
      };
      term.onData((data) => {
        if (socket.readyState === 1) socket.send(encoder.encode(data));
      });
    } catch (e) {
      status.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener('click', open);
  tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    open();
  });

  el.hidden = true;
  api
    .info()
    .then((i) => {
      exec = i.exec;
      showPanel();
    })
    .catch(() => {
      // Unknown: offer the terminal; the server's refusal explains itself.
      exec = { enabled: true, token: 'api' };
      showPanel();
    });

  return {
    el,
    update(next) {
      job = next;
      showPanel();
    },
    close() {
      end('');
    },
  };
}
