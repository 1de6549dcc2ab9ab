// The console's only way to the server: the public API at /v4, with the console access
// token from sign-up or log-in. A 401 means the token expired or was revoked: log in again.

const KEY = 'gpucloud.console';

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map(e => e.reason).join(' ') || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

export function session() {
  try { return JSON.parse(localStorage.getItem(KEY)); } catch { return null; }
}
function saveSession(value) { localStorage.setItem(KEY, JSON.stringify(value)); }
function dropSession() { localStorage.removeItem(KEY); }

let onExpired = () => {};
export function whenExpired(callback) { onExpired = callback; }

async function parse(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const errors = body && Array.isArray(body.errors) ? body.errors : [{ reason: `HTTP ${response.status}` }];
    throw new ApiError(response.status, errors);
  }
  return body;
}

export async function api(method, path, body = undefined, headers = {}) {
  const current = session();
  const response = await fetch(`/v4${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...(current ? { Authorization: `Bearer ${current.token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && current) {
    dropSession();
    onExpired();
  }
  return parse(response);
}

export const get = (path, headers) => api('GET', path, undefined, headers);
export const post = (path, body = {}) => api('POST', path, body);
export const put = (path, body = {}) => api('PUT', path, body);
export const del = path => api('DELETE', path);

// Every page of a list (500 a page, the API's maximum).
export async function all(path, filter = null) {
  const headers = filter ? { 'X-Filter': JSON.stringify(filter) } : {};
  const sep = path.includes('?') ? '&' : '?';
  const first = await get(`${path}${sep}page_size=500`, headers);
  let data = first.data;
  for (let page = 2; page <= first.pages; page += 1) {
    data = data.concat((await get(`${path}${sep}page_size=500&page=${page}`, headers)).data);
  }
  return data;
}

// A GET that answers null when the server does not offer the route (yet).
// Routes found missing are not asked again until the page is reloaded.
const missing = new Set();
export async function optional(path, headers) {
  const route = path.split('?')[0];
  if (missing.has(route)) return null;
  try { return await get(path, headers); } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) { missing.add(route); return null; }
    throw error;
  }
}

// Sign-up, log-in and password change: the only calls outside /v4.
export async function signIn(kind, email, password) {
  const response = await fetch(`/${kind}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  const body = await parse(response);
  saveSession(body);
  return body;
}

// A new password (the current one required): every console session ends and this one is replaced.
export async function changePassword(password, newPassword) {
  const response = await fetch('/password', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: session().email, password, new_password: newPassword }),
  });
  saveSession(await parse(response));
}

export async function signOut() {
  const current = session();
  if (current) {
    try { await del(`/profile/tokens/${current.token_id}`); } catch { /* already gone */ }
  }
  dropSession();
}
