// The JSON API with the session cookies. The access and refresh tokens are
// HttpOnly cookies this script never sees; writes echo the readable
// `bourse_csrf` cookie in `X-CSRF-Token` (the double-submit check), and an
// expired access token is renewed once through POST /auth/refresh.

const BASE = '/api/v1';

/** A problem+json answer (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    const detail = problem.detail || problem.title || `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.code = problem.code || 'error';
    this.detail = sentence(detail);
    this.errors = problem.errors || {};
    this.title = problem.title || '';
  }
}

/** "insufficient funds" → "Insufficient funds." */
function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?)]$/.test(first) ? first : `${first}.`;
}

export function cookie(name) {
  const prefix = `${name}=`;
  const found = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith(prefix));
  return found ? decodeURIComponent(found.slice(prefix.length)) : '';
}

/** The CSRF cookie lives as long as the refresh token: no cookie, no session. */
export function mayHaveSession() {
  return cookie('bourse_csrf') !== '';
}

/** A fresh Idempotency-Key for one money movement. */
export function idempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

let onSessionEnded = () => {};
/** Called when the session is gone (refresh refused): the page signs out. */
export function whenSessionEnds(callback) {
  onSessionEnded = callback;
}

// One refresh at a time: a rotated refresh token presented twice revokes
// the whole session, so concurrent 401s must share one renewal.
let refreshing = null;
function refreshSession() {
  if (!refreshing) {
    refreshing = fetch(`${BASE}/auth/refresh`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': cookie('bourse_csrf'), Accept: 'application/json' },
    })
      .then((response) => response.ok)
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function send(method, path, body, headers) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json, application/problem+json', ...headers },
  };
  if (method !== 'GET') init.headers['X-CSRF-Token'] = cookie('bourse_csrf');
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, {
      code: 'network',
      detail: 'cannot reach the server; check your connection and try again',
    });
  }
}

async function problemOf(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `the server answered ${response.status} ${response.statusText}`.trim() };
  }
  if (response.status === 429) {
    const wait = response.headers.get('Retry-After');
    if (wait && !/retry in/i.test(problem.detail || '')) {
      problem.detail = `${problem.detail || 'too many requests'}; try again in ${wait} s`;
    }
  }
  return new ApiError(response.status, problem);
}

/**
 * Calls the API; resolves with the JSON answer (null for 204), rejects
 * with an ApiError. Options: `idempotencyKey`, `query` ({k: v}).
 */
export async function api(method, path, body, { idempotencyKey: key, query } = {}) {
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, v);
    }
    const text = params.toString();
    if (text) path += `?${text}`;
  }
  const headers = key ? { 'Idempotency-Key': key } : {};
  let response = await send(method, path, body, headers);
  const isAuthRoute = path.startsWith('/auth/');
  if (response.status === 401 && !isAuthRoute && mayHaveSession()) {
    if (await refreshSession()) {
      response = await send(method, path, body, headers);
    } else {
      onSessionEnded();
    }
  }
  if (!response.ok) throw await problemOf(response);
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : null;
}

export const get = (path, query) => api('GET', path, undefined, { query });
export const post = (path, body = {}, options = {}) => api('POST', path, body, options);
