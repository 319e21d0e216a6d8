// What every demo page shares: the login kept in localStorage (so a second tab is the
// same user), REST calls with a bearer token, and one adapter socket per page.
import { connect } from "../realtime.js";

const KEYS = { access: "rt-demo.access", refresh: "rt-demo.refresh", user: "rt-demo.user" };

export const $ = (selector, root = document) => root.querySelector(selector);

/** Build an element: el("li", {class: "x", dataset: {id: 1}}, "text", child). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function stored() {
  const user = localStorage.getItem(KEYS.user);
  return {
    access: localStorage.getItem(KEYS.access),
    refresh: localStorage.getItem(KEYS.refresh),
    user: user ? JSON.parse(user) : null,
  };
}

async function postJson(path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

/** Log in with a password; keeps the token pair and who we are. */
export async function login(username, password) {
  const tokens = await postJson("/api/auth/token/", { username, password });
  if (!tokens.ok) throw new Error(tokens.data?.detail || "login failed");
  localStorage.setItem(KEYS.access, tokens.data.access);
  localStorage.setItem(KEYS.refresh, tokens.data.refresh);
  const me = await api("GET", "/api/me/");
  localStorage.setItem(KEYS.user, JSON.stringify(me));
  return me;
}

export function logout() {
  for (const key of Object.values(KEYS)) localStorage.removeItem(key);
  location.href = "/";
}

/** A new access token from the refresh token (before every socket (re)connect). */
export async function freshToken() {
  const { refresh } = stored();
  if (!refresh) throw new Error("not logged in");
  const result = await postJson("/api/auth/token/refresh/", { refresh });
  if (result.status === 401) {
    logout();
    throw new Error("session expired");
  }
  if (!result.ok) throw new Error(`token refresh failed (${result.status})`);
  localStorage.setItem(KEYS.access, result.data.access);
  return result.data.access;
}

/** Call the REST API; a 401 gets one retry with a refreshed access token. */
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: `Bearer ${stored().access}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0) {
      await freshToken();
      continue;
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const message = data?.error?.message || `${method} ${path}: ${response.status}`;
      throw Object.assign(new Error(message), { status: response.status, data });
    }
    return data;
  }
}

let directory = null;
/** id -> display name of every user (GET /api/users/), loaded once per page. */
export async function userNames() {
  if (!directory) {
    const users = await api("GET", "/api/users/");
    directory = new Map(users.map((u) => [u.id, u.name]));
  }
  return directory;
}

/**
 * The page's socket: the WebSocket goes to the page's own server, or to `?ws=URL`
 * (a fleet: the page from one instance, the socket on another). Shows the connection
 * state in the header and counts connects (the tests read data-connects).
 */
export function openSocket() {
  const params = new URLSearchParams(location.search);
  const other = params.get("ws");
  const socket = connect(other || location.origin, {
    auth: async () => ({ token: await freshToken() }),
    // The HTTP fallback is for the page's own origin: the server allows no
    // cross-origin POST (docs/adapter.md "Transports").
    ...(other ? { transports: ["websocket"] } : {}),
  });
  const badge = $("#conn");
  let connects = 0;
  const show = (state) => {
    if (!badge) return;
    badge.textContent = state;
    badge.dataset.state = state;
    badge.dataset.connects = String(connects);
  };
  show("connecting");
  socket.on("connect", () => {
    connects += 1;
    show("connected");
  });
  socket.on("disconnect", (reason) => show(reason === "transport close" ? "reconnecting" : "offline"));
  socket.on("connect_error", (err) => {
    if (badge) badge.title = err.message;
    show(socket.active ? "reconnecting" : "offline");
  });
  window.realtimeSocket = socket; // for the console and the browser tests
  return socket;
}

/** Every page but the login: make sure we are logged in and fill the header. */
export function requireLogin() {
  const { refresh, user } = stored();
  if (!refresh || !user) {
    location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new Error("not logged in");
  }
  const who = $("#who");
  if (who) who.textContent = user.name;
  $("#logout")?.addEventListener("click", logout);
  // Keep ?ws= when moving between pages.
  for (const link of document.querySelectorAll("nav a[data-keep-query]")) {
    link.href += location.search;
  }
  return user;
}

/** Show one line in the page's #log: an error (the default) or a notice. */
export function report(text, { ok = false } = {}) {
  const log = $("#log");
  if (!log) return;
  log.textContent = text;
  log.className = ok ? "notice" : "error";
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}
