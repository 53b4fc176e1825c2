// terminal.js — the job detail's terminal panel: a shell inside the running task (exec),
// through the websocket /v1/jobs/ID/exec, drawn by xterm.js (from the npm registry, compiled
// into the binary and served under /assets/vendor/). Binary frames carry the terminal's
// bytes both ways; text frames are JSON control messages (resize from here; exit, notice,
// error from the server). When the socket cannot open, a plain GET of the same URL fetches
// the server's reason (exec off, no token, no task) to show it.

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

/** Why the server refused a session, in its own words (null when it would have upgraded). */
async function refusal(id) {
  const url = api.withToken(`/v1/jobs/${encodeURIComponent(id)}/exec`);
  const response = await fetch(url);
  if (response.status === 426) return null; // it would upgrade: the connection itself failed
  try {
    const body = await response.json();
    return body.error?.message || `the server answered ${response.status}`;
  } catch {
    return `the server answered ${response.status}`;
  }
}

/**
 * The panel for one job: a button that opens the terminal, the terminal, and a status line.
 * `el` goes into the detail; `update(job)` shows or hides it; `close()` ends the session.
 */
export function createTerminal() {
  const status = h('p', { class: 'hint', role: 'status' });
  const screen = h('div', { class: 'terminal', hidden: true, 'aria-label': 'Terminal in the task' });
  const button = h('button', { type: 'button', class: 'btn', text: 'Open terminal' });
  const el = h('div', { class: 'terminal-panel' }, button, status, screen);
  let job = null;
  let session = null;

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
      const url = api.withToken(
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
        end(why || 'The connection failed.');
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

  return {
    el,
    update(next) {
      job = next;
      const live = job.status === 'running' || job.status === 'cancelling';
      // A failed attempt's workspace may still be kept for a while.
      el.hidden = !(live || job.status === 'failed' || session);
    },
    close() {
      end('');
    },
  };
}
