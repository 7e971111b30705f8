// The JSON API as the pages call it: same origin, the session's cookies, and the CSRF header
// (the csrf_token cookie's value, double submit) on every unsafe request.

export const API = '/api/v1';

export function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

// The csrf_token cookie lives as long as the session's refresh token: a sign of a session to use.
export function signedIn() {
  return cookie('csrf_token') !== null;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  // the problem's type without its base: "nights-unavailable", "payment-declined", ...
  get kind() {
    return (this.problem.type || '').split('/').pop();
  }
}

export async function api(method, path, { body, headers = {} } = {}) {
  const sent = { Accept: 'application/json', ...headers };
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  if (method !== 'GET') {
    const csrf = cookie('csrf_token');
    if (csrf) sent['X-CSRF-Token'] = csrf;
  }
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'The server could not be reached. Check your connection.' });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data || { title: response.statusText });
  return data;
}

// A new access token from the refresh cookie; false if the session is over.
export async function refreshSession() {
  try {
    await api('POST', '/auth/refresh');
    return true;
  } catch {
    return false;
  }
}

// Where to go after signing in: a path on this site only, never another origin.
export function safeNext(next) {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') ? next : '/account';
}
