// api.js — the API client: every request to /v1 goes through here. Owns the token (kept in
// sessionStorage, sent as `Authorization: Bearer`, or as `?access_token=` where a header
// cannot be set: EventSource, download links, websockets), exec's own token where the farm
// has one, the server's error shape ({"error": {code, message}}), the 401 hook that brings
// up the token form, and uploads with progress (XMLHttpRequest, which reports upload
// progress; fetch does not).

const TOKEN_KEY = 'ffarm-token';
/** Exec's own token, where the farm has one (`[exec] token`): it alone opens a terminal. */
const EXEC_TOKEN_KEY = 'ffarm-exec-token';
let token = readToken(TOKEN_KEY);
let execToken = readToken(EXEC_TOKEN_KEY);
const unauthorizedHooks = new Set();
let presetsPromise = null;
let infoPromise = null;

function readToken(key) {
  try {
    return sessionStorage.getItem(key) || '';
  } catch {
    return '';
  }
}

function storeToken(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    // Storage refused: the token lasts until the page is reloaded.
  }
}

/** An error answer, with the server's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function hasToken() {
  return token !== '';
}

export function setToken(value) {
  token = value;
  storeToken(TOKEN_KEY, value);
}

export function forgetToken() {
  token = '';
  presetsPromise = null;
  infoPromise = null;
  storeToken(TOKEN_KEY, '');
  forgetExecToken();
}

export function hasExecToken() {
  return execToken !== '';
}

export function setExecToken(value) {
  execToken = value;
  storeToken(EXEC_TOKEN_KEY, value);
}

export function forgetExecToken() {
  execToken = '';
  storeToken(EXEC_TOKEN_KEY, '');
}

/** Registers `fn(error)` for answers that say the token is missing or wrong. */
export function onUnauthorized(fn) {
  unauthorizedHooks.add(fn);
}

function unauthorized(error) {
  presetsPromise = null;
  infoPromise = null;
  for (const fn of unauthorizedHooks) fn(error);
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v != null && v !== '') params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function errorFrom(status, text) {
  try {
    const body = JSON.parse(text);
    if (body?.error?.message) return new ApiError(status, body.error.code, body.error.message);
  } catch {
    // Not the API's JSON (a proxy's page?): say what we know.
  }
  return new ApiError(status, 'http', `the server answered ${status}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

/**
 * A JSON request. `options.token` tries another token without touching the stored one (the
 * token form uses it); a 401 then does not call the hooks.
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: 'application/json' };
  const useToken = options.token ?? token;
  if (useToken) headers.Authorization = `Bearer ${useToken}`;
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  let response;
  try {
    response = await fetch(path + queryString(options.query), {
      method,
      headers,
      body,
      signal: options.signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'the farm cannot be reached (is ffarm serve running?)');
  }
  const text = await response.text();
  if (!response.ok) {
    const error = await errorFrom(response.status, text);
    if (response.status === 401 && options.token === undefined) unauthorized(error);
    throw error;
  }
  return text ? JSON.parse(text) : null;
}

export const get = (path, query, options = {}) => request('GET', path, { ...options, query });
export const post = (path, json) => request('POST', path, { json });

/** A job's URL under /v1/jobs. */
export function jobPath(id, rest = '') {
  return `/v1/jobs/${encodeURIComponent(id)}${rest}`;
}

/** Presets (name, description…), fetched once per token. */
export function presets() {
  presetsPromise ??= get('/v1/presets').catch((e) => {
    presetsPromise = null;
    throw e;
  });
  return presetsPromise;
}

/** What the farm says of itself (GET /v1/info: version, exec), fetched once per token. */
export function info() {
  infoPromise ??= get('/v1/info').catch((e) => {
    infoPromise = null;
    throw e;
  });
  return infoPromise;
}

function withQueryToken(url, value) {
  if (!value) return url;
  return `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(value)}`;
}

/** A URL with the token in its query, for requests that cannot carry a header. */
export function withToken(url) {
  return withQueryToken(url, token);
}

/** An exec URL with the credential exec takes: its own token where set, else the API's. */
export function withExecToken(url) {
  return withQueryToken(url, execToken || token);
}

/** An object's URL: the bucket and each key segment escaped, the slashes kept. */
function objectPath(bucket, key) {
  const segments = key.split('/').map(encodeURIComponent).join('/');
  return `/v1/buckets/${encodeURIComponent(bucket)}/objects/${segments}`;
}

/** A link that downloads an object. */
export function downloadUrl(bucket, key) {
  return withToken(objectPath(bucket, key));
}

/**
 * Uploads a file as an object. Returns {done, abort}: `done` resolves to the server's answer
 * ({bucket, key, bytes, jobs, ignored}); `onProgress(loaded, total)` follows the upload.
 */
export function upload(bucket, key, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open('PUT', objectPath(bucket, key));
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', async () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, 'bad-answer', 'the upload answer was not JSON'));
        }
        return;
      }
      const error = await errorFrom(xhr.status, xhr.responseText);
      if (xhr.status === 401) unauthorized(error);
      reject(error);
    });
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, 'unreachable', 'the upload failed: the farm cannot be reached')),
    );
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'upload cancelled')));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
