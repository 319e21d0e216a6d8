// Browser adapter for the realtime backend: a small stand-in for the part of
// socket.io-client that chat front ends use, speaking the JSON protocol of
// docs/protocol.md over one WebSocket, or over HTTP where WebSockets are blocked. An
// ES module with no dependencies and no build step (beside it: positions.js keeps the
// room positions of recovery, http-transport.js is the HTTP fallback); types in
// realtime.d.ts, API and migration table in docs/adapter.md.

import { HttpTransport, streamUrl } from "./http-transport.js";
import { RoomPositions } from "./positions.js";

/** Reconnection defaults, the same as socket.io-client's. */
export const DEFAULTS = Object.freeze({
  reconnection: true,
  reconnectionAttempts: Infinity,
  reconnectionDelay: 1000,
  reconnectionDelayMax: 5000,
  randomizationFactor: 0.5,
  // Wait for the connect ack this long before giving the attempt up (ms).
  timeout: 20000,
  // The server only writes last_active_at once a minute; 30 s keeps it fresh.
  heartbeatInterval: 30000,
  // Emits kept while disconnected; past this the oldest is dropped with a warning,
  // so a page left offline does not grow without bound.
  maxBufferedEmits: 100,
  // Send `refresh` this long before the token's exp (ms), or a third of the time
  // left when that is shorter: early enough for a slow `auth` and a retry.
  refreshMargin: 60000,
  path: "/ws/",
  autoConnect: true,
  // WebSocket first, HTTP when it fails (docs/adapter.md "Transports").
  transports: ["websocket", "http"],
  // A WebSocket that has not opened, or has not brought its first frame, this long
  // (ms) after it was started or opened is given up for HTTP: a proxy that swallows
  // the upgrade would otherwise cost the whole connect timeout on every attempt.
  fallbackTimeout: 5000,
});

// Transport names, socket.io-client's among them: "polling" (which Open WebUI asks
// for when its WebSocket support is off) is the HTTP transport here.
const TRANSPORTS = new Map([
  ["websocket", "websocket"],
  ["http", "http"],
  ["polling", "http"],
]);
// A socket.io path (Open WebUI's is "/ws/socket.io") turns socket.io-compatible mode
// on when the `socketio` option does not say.
const SOCKETIO_PATH = /\/socket\.io\/?$/;
// The dialects a connect frame may name (docs/protocol.md §3).
const PROTOCOLS = new Set(["openwebui", "realtime"]);
// Refusals of the connect frame that the same frame would get again.
const FINAL_CONNECT_ERRORS = new Set(["unauthorized", "bad_request"]);

// Events this adapter raises itself; the server's events of the same name are
// handled here (`disconnect`, `recovery`) or never sent (`connect` is a client event).
const RESERVED = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "refresh_error",
  "recovery",
  "recovery_failed",
  "transport",
]);

// Close codes after which reconnecting cannot help (docs/protocol.md §3, §4).
const CLOSE_UNAUTHORIZED = 4401;
// The server's `disconnect` reason at the token's expiry: unlike the other forced
// disconnects, a reconnect with a fresh token from `auth` can help.
const TOKEN_EXPIRED = "token expired";

/** An error from the server (ack or call) or from the adapter, with a stable code. */
export class RealtimeError extends Error {
  constructor(code, message, data) {
    super(message || code);
    this.name = "RealtimeError";
    this.code = code;
    // socket.io-client puts server details of connect_error in err.data.
    this.data = data ?? { code, message: message || code };
  }
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from
 * reconnectionDelay, capped at reconnectionDelayMax, then spread by
 * ±randomizationFactor so a fleet's clients do not return all at once.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const base = options.reconnectionDelay ?? DEFAULTS.reconnectionDelay;
  const max = options.reconnectionDelayMax ?? DEFAULTS.reconnectionDelayMax;
  const factor = options.randomizationFactor ?? DEFAULTS.randomizationFactor;
  const exact = Math.min(base * 2 ** Math.min(attempt, 31), max);
  const jittered = exact * (1 + factor * (2 * random() - 1));
  return Math.max(0, Math.min(Math.round(jittered), max));
}

/**
 * Turn a page-relative or http(s) URL into the WebSocket URL of the endpoint. With
 * `force` (an explicit `path` option, as socket.io-client uses it) the path replaces
 * the URL's; it always ends with a slash, as socket.io-client's does.
 */
export function socketUrl(url, path = DEFAULTS.path, base, force = false) {
  const where =
    base ?? (typeof location !== "undefined" ? location.href : "http://localhost/");
  const parsed = new URL(url || "/", where);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  if (parsed.protocol === "https:") parsed.protocol = "wss:";
  // A bare origin gets the endpoint path; an explicit path is kept as given.
  if (force || parsed.pathname === "/" || parsed.pathname === "") {
    parsed.pathname = path.endsWith("/") ? path : `${path}/`;
  }
  parsed.search = ""; // never put a token (or anything else) in the URL
  parsed.hash = "";
  return parsed.toString();
}

/** Open a socket: `connect(url, {auth: {token}, ...})`, like socket.io's `io()`. */
export function connect(url, options = {}) {
  return new Socket(url, options);
}
export { connect as io };
export default connect;

/**
 * The transports an attempt tries, in order: WebSocket first when it is listed,
 * whatever the order given (socket.io ends on WebSocket too, by its upgrade).
 */
function attemptTransports(transports) {
  if (!Array.isArray(transports) || !transports.length) {
    throw new Error("realtime: transports must be a non-empty array");
  }
  const names = new Set();
  for (const name of transports) {
    if (!TRANSPORTS.has(name)) {
      throw new Error(`realtime: unknown transport '${name}' (websocket, http, polling)`);
    }
    names.add(TRANSPORTS.get(name));
  }
  return ["websocket", "http"].filter((name) => names.has(name));
}

const position = ({ epoch, offset }) => ({ epoch, offset });

export class Socket {
  constructor(url, options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this._transports = attemptTransports(this.options.transports);
    this.url = socketUrl(url, this.options.path, undefined, options.path !== undefined);
    /** The HTTP transport's stream URL (docs/protocol.md §10). */
    this.streamUrl = streamUrl(this.url);
    // socket.io-compatible mode: acks without an error argument, the openwebui
    // dialect by default (docs/adapter.md).
    this.socketio = options.socketio ?? SOCKETIO_PATH.test(this.options.path);
    this.protocol = options.protocol ?? (this.socketio ? "openwebui" : undefined);
    if (this.protocol !== undefined && !PROTOCOLS.has(this.protocol)) {
      throw new Error(`realtime: unknown protocol '${this.protocol}' (openwebui, realtime)`);
    }
    this.auth = options.auth;
    this.id = undefined;
    this.user = undefined;
    this.connected = false;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._fetch = options.fetch; // HttpTransport's default is globalThis.fetch
    this._transportName = undefined; // of the connection or attempt (socket.io)
    this._listeners = new Map();
    this._pendingAcks = new Map(); // ack id -> settle(err, data), sent on this socket
    this._buffer = []; // frames waiting for a connection: {event, data, settle}
    this._nextAck = 1; // 0 is the connect frame's
    this._attempts = 0;
    this._ws = null;
    this._timers = new Set();
    this._heartbeat = null;
    this._lifetime = null; // token in force, its exp, the refresh timer (docs/adapter.md)
    this._userJoin = undefined; // last user-join payload, re-sent after a reconnect
    this._wanted = false; // the page wants a connection (connect() until disconnect())
    this._everConnected = false;
    this._generation = 0; // bumped per attempt: a stale attempt's callbacks do nothing
    // Resumable delivery (docs/adapter.md "Recovery"): the last position seen per
    // room and the sid of the last connection, presented on a reconnect.
    this._rooms = new RoomPositions();
    this._lastSid = undefined;
    /** socket.io-client's name: the last reconnect recovered every room so far. */
    this.recovered = false;
    /** The position of the event whose listeners are running, else null. */
    this.lastPosition = null;
    if (this.options.autoConnect) this.connect();
  }

  /** True while the adapter is connected or trying to (socket.io's `active`). */
  get active() {
    return this._wanted;
  }

  get disconnected() {
    return !this.connected;
  }

  /**
   * socket.io-client's Manager, for the one thing read from it here:
   * `socket.io.engine.transport.name`, "websocket" or "http".
   */
  get io() {
    const socket = this;
    return { engine: { transport: { name: socket._transportName } } };
  }

  // --- listeners -------------------------------------------------------------------

  /** Add a listener. For a server call its return value (or promise) is the reply. */
  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, []);
    this._listeners.get(event).push(listener);
    return this;
  }

  /** Add a listener that runs once. */
  once(event, listener) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      return listener.apply(this, args);
    };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  /** Remove one listener, every listener of an event, or all listeners. */
  off(event, listener) {
    if (event === undefined) {
      this._listeners.clear();
    } else if (listener === undefined) {
      this._listeners.delete(event);
    } else {
      const list = (this._listeners.get(event) || []).filter(
        (fn) => fn !== listener && fn.listener !== listener,
      );
      if (list.length) this._listeners.set(event, list);
      else this._listeners.delete(event);
    }
    return this;
  }

  listeners(event) {
    return [...(this._listeners.get(event) || [])];
  }

  _fire(event, ...args) {
    const results = [];
    for (const listener of this.listeners(event)) {
      try {
        results.push(listener.apply(this, args));
      } catch (err) {
        console.error(`realtime: a listener of '${event}' failed`, err);
      }
    }
    return results;
  }

  // --- emitting ----------------------------------------------------------------------

  /**
   * Send an event. A function as last argument gets the ack: called with the
   * server's data; for an error reply with a RealtimeError (test with
   * `instanceof Error`), or in socket.io-compatible mode with `null` and a warning.
   */
  emit(event, data, ack) {
    return this._emitter({}).emit(event, data, ack);
  }

  /** Send an event and resolve with the ack's data (reject with RealtimeError). */
  emitWithAck(event, data) {
    return this._emitter({}).emitWithAck(event, data);
  }

  /**
   * A view whose emits fail with code `timeout` when no ack came within `ms`:
   * `socket.timeout(5000).emit(ev, data, (err, data) => ...)`, like socket.io.
   */
  timeout(ms) {
    return this._emitter({ timeout: ms });
  }

  /** A view whose emits are dropped, not buffered, while disconnected (socket.io). */
  get volatile() {
    return this._emitter({ volatile: true });
  }

  // One view per chain of flags: `socket.timeout(ms).volatile.emit(...)` and
  // `socket.volatile.timeout(ms).emit(...)` are the same.
  _emitter(flags) {
    const socket = this;
    return {
      emit(event, data, ack) {
        if (typeof data === "function" && ack === undefined) {
          ack = data;
          data = null;
        }
        if (RESERVED.has(event)) {
          throw new Error(`realtime: '${event}' is a reserved event name`);
        }
        socket._send(event, data, socket._settler(event, ack, flags), flags);
        return socket;
      },
      emitWithAck(event, data) {
        return new Promise((resolve, reject) => {
          const settle = (err, value) => (err ? reject(err) : resolve(value));
          socket._send(event, data, settle, flags);
        });
      },
      timeout(ms) {
        return socket._emitter({ ...flags, timeout: ms });
      },
      get volatile() {
        return socket._emitter({ ...flags, volatile: true });
      },
    };
  }

  // How an ack callback is called: error-first after timeout(), as in socket.io;
  // otherwise with the value alone, an error reply being a RealtimeError or, in
  // socket.io-compatible mode, null (a socket.io page expects the server's value, and
  // null reads as "no" to Open WebUI's boolean and state acks).
  _settler(event, ack, flags) {
    if (!ack) return null;
    if (flags.timeout !== undefined) return (err, value) => ack(err, value);
    if (!this.socketio) return (err, value) => ack(err ?? value);
    return (err, value) => {
      if (err) console.warn(`realtime: '${event}' failed: ${err.code}: ${err.message}`);
      ack(err ? null : value);
    };
  }

  _send(event, data, settle, { timeout: timeoutMs, volatile = false } = {}) {
    const dropped = volatile && !this.connected;
    if (event === "user-join" && !dropped) this._userJoin = data ?? null;
    let once = settle;
    if (settle) {
      let done = false;
      let timer = null;
      once = (err, value) => {
        if (done) return;
        done = true;
        if (timer) this._clearTimer(timer);
        settle(err, value);
      };
      if (timeoutMs !== undefined) {
        timer = this._setTimer(() => {
          once(new RealtimeError("timeout", `no ack for '${event}' in ${timeoutMs} ms`));
        }, timeoutMs);
      }
    }
    const item = { event, data: data ?? null, settle: once };
    if (this.connected) {
      this._transmit(item);
    } else if (dropped) {
      // As socket.io does; a timeout still fails the ack in `ms`.
    } else {
      this._buffer.push(item);
      if (this._buffer.length > this.options.maxBufferedEmits) {
        const dropped = this._buffer.shift();
        console.warn(
          `realtime: offline buffer full (${this.options.maxBufferedEmits}); ` +
            `dropped the oldest emit '${dropped.event}'`,
        );
        dropped.settle?.(
          new RealtimeError("dropped", "dropped from the offline buffer"),
        );
      }
    }
  }

  _transmit({ event, data, settle }) {
    const frame = { event, data };
    if (settle) {
      frame.ack = this._nextAck++;
      this._pendingAcks.set(frame.ack, settle);
    }
    this._ws.send(JSON.stringify(frame));
  }

  // --- connection --------------------------------------------------------------------

  /** Open the connection (after `disconnect()`, or with `autoConnect: false`). */
  connect() {
    if (this._wanted) return this;
    this._wanted = true;
    this._attempts = 0;
    this._open();
    return this;
  }

  open() {
    return this.connect();
  }

  /** Close for good: no reconnect until `connect()` is called again. */
  disconnect() {
    const was = this.connected;
    this._wanted = false;
    this._generation++;
    this._clearAllTimers();
    this._teardown();
    if (was) this._fire("disconnect", "io client disconnect");
    return this;
  }

  close() {
    return this.disconnect();
  }

  async _token() {
    let auth = this.auth;
    if (typeof auth === "function") {
      // socket.io style `auth(cb)`, or a function returning the object or a promise.
      auth = await new Promise((resolve, reject) => {
        try {
          const returned = auth(resolve);
          if (returned !== undefined) Promise.resolve(returned).then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      });
    }
    return auth?.token;
  }

  async _open() {
    const generation = ++this._generation;
    let token;
    try {
      token = await this._token();
    } catch (err) {
      this._failedAttempt(new RealtimeError("unauthorized", `auth failed: ${err}`));
      return;
    }
    if (!this._wanted || generation !== this._generation) return;
    if (typeof token !== "string" || !token) {
      this._failedAttempt(new RealtimeError("unauthorized", "no token to connect with"));
      return;
    }
    this._openTransport(token, 0);
  }

  _newTransport(name) {
    if (name === "http") return new HttpTransport(this.streamUrl, { fetch: this._fetch });
    return new this._WebSocket(this.url);
  }

  // One transport of an attempt: the next one in `_transports` takes over when this
  // one brings no frame at all (docs/adapter.md "Transports"), with the same token.
  _openTransport(token, index, fallbackReason) {
    const name = this._transports[index];
    const hasFallback = index + 1 < this._transports.length;
    this._transportName = name;
    const generation = this._generation;
    this._fire("transport", name, fallbackReason);
    // A listener that disconnected (and maybe connected again) ended this attempt.
    if (!this._wanted || generation !== this._generation) return;
    let ws;
    try {
      ws = this._newTransport(name);
    } catch (err) {
      if (hasFallback) this._openTransport(token, index + 1, `${name} failed: ${err}`);
      else this._failedAttempt(new RealtimeError("transport", String(err)));
      return;
    }
    this._ws = ws;
    let authenticated = false;
    let heard = false; // a frame came: this transport works, whatever it says
    let connectError = null;
    const deadline = this._setTimer(() => {
      connectError = new RealtimeError("timeout", "no connect ack in time");
      ws.close();
    }, this.options.timeout);
    const fallBack = (reason) => {
      this._clearTimer(deadline);
      this._clearTimer(silence);
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close();
      } catch {
        // already closing
      }
      this._ws = null;
      this._openTransport(token, index + 1, reason);
    };
    // Until the first frame, from the start and again from the open; without a
    // fallback the connect deadline alone applies.
    const wait = this.options.fallbackTimeout;
    const silent = () => {
      if (ws === this._ws) fallBack(`no frame from ${name} in ${wait} ms`);
    };
    let silence = hasFallback ? this._setTimer(silent, wait) : null;

    ws.onopen = () => {
      if (silence) {
        this._clearTimer(silence);
        silence = this._setTimer(silent, wait);
      }
      const data = this.protocol ? { token, protocol: this.protocol } : { token };
      const recover = this._everConnected ? this._rooms.recoverFrame(this._lastSid) : null;
      if (recover) data.recover = recover;
      ws.send(JSON.stringify({ event: "connect", data, ack: 0 }));
    };
    ws.onmessage = (message) => {
      if (ws !== this._ws) return;
      if (!heard) {
        heard = true;
        this._clearTimer(silence);
      }
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        console.warn("realtime: ignored a frame that is not JSON");
        return;
      }
      if (!authenticated && frame.ack === 0) {
        this._clearTimer(deadline);
        if (frame.error) {
          // The server closes with 4401 next; reconnecting with the same
          // credentials would be refused again.
          connectError = new RealtimeError(
            frame.error.code,
            frame.error.message,
            frame.error,
          );
          return;
        }
        authenticated = true;
        this._lifetime = { token, exp: frame.data?.exp, timer: null };
        this._connected(frame.data);
        return;
      }
      if (!authenticated && frame.event === "error") {
        connectError = new RealtimeError(frame.data.code, frame.data.message, frame.data);
        return;
      }
      this._dispatch(frame);
    };
    ws.onclose = (close) => {
      this._clearTimer(deadline);
      if (ws !== this._ws) return;
      if (!heard && hasFallback) {
        fallBack(`${name} closed (${close?.code ?? "?"}) before any frame`);
        return;
      }
      this._clearTimer(silence);
      this._ws = null;
      if (authenticated) {
        this._lost(close);
      } else {
        const why = close?.reason ? `: ${close.reason}` : "";
        const err =
          connectError ??
          new RealtimeError("transport", `${name} closed (${close?.code ?? "?"})${why}`);
        // A refused token or frame stops here, like socket.io after a middleware error;
        // anything else (server down, restarting) is retried.
        const retry = !FINAL_CONNECT_ERRORS.has(err.code);
        this._failedAttempt(err, retry);
      }
    };
    ws.onerror = () => {}; // a close event always follows
    ws.onrefused = (texts, error) => this._refused(texts, error);
  }

  _connected(hello) {
    const reconnect = this._everConnected;
    this._everConnected = true;
    this._attempts = 0;
    this.id = hello.sid;
    this._lastSid = hello.sid;
    this.user = hello.user;
    this.connected = true;
    this._serverReason = undefined;
    const failed = this._connectRecovery(hello, reconnect);
    // Rooms are per socket: a new socket must join again before anything else.
    if (reconnect && this._userJoin !== undefined) {
      this._transmit({ event: "user-join", data: this._userJoin, settle: null });
    }
    this._heartbeat = setInterval(() => {
      if (this.connected) this._transmit({ event: "heartbeat", data: null });
    }, this.options.heartbeatInterval);
    this._scheduleRefresh(false);
    // Listeners re-join their rooms first, so buffered emits that need them work.
    this._fire("connect");
    for (const [room, details] of failed) this._fire("recovery_failed", room, details);
    const buffered = this._buffer.splice(0);
    for (const item of buffered) {
      if (!this.connected) {
        this._buffer.push(item);
      } else {
        this._transmit(item);
      }
    }
  }

  _lost(close) {
    this.connected = false;
    this.id = undefined;
    if (this._heartbeat) clearInterval(this._heartbeat);
    this._heartbeat = null;
    this._endLifetime();
    this._failPendingAcks();
    // The server said go away: its `disconnect` event, or 4401 (docs/protocol.md §3).
    // At the token's expiry it did too, but a new token from `auth` may do: that one
    // is lost like a transport and reconnects (a static, expired token is then
    // refused as a connect_error).
    const expired = this._serverReason === TOKEN_EXPIRED;
    const told = close?.code === CLOSE_UNAUTHORIZED || this._serverReason !== undefined;
    const forced = told && !expired;
    const reason = forced ? "io server disconnect" : "transport close";
    const details = { code: close?.code, reason: this._serverReason ?? close?.reason };
    if (forced) {
      this._wanted = false; // like socket.io: the server said go away
      this._failBuffer();
    }
    // Decided before the listeners run: one that calls connect() (Open WebUI does on
    // 'io server disconnect') has started an attempt of its own.
    const reconnect = this._wanted;
    this._fire("disconnect", reason, details);
    if (reconnect && this._wanted) this._scheduleReconnect();
  }

  _failedAttempt(err, retry = true) {
    this._ws = null;
    if (!this._wanted) return;
    this._fire("connect_error", err);
    if (retry) this._scheduleReconnect();
    else this._wanted = false;
  }

  _scheduleReconnect() {
    if (!this.options.reconnection || this._attempts >= this.options.reconnectionAttempts) {
      this._wanted = false;
      this._failBuffer();
      return;
    }
    const delay = backoffDelay(this._attempts++, this.options, this.options.random);
    this._setTimer(() => {
      if (this._wanted && !this._ws) this._open();
    }, delay);
  }

  // Frames the HTTP transport's server refused (400, 413, 415): their acks fail with
  // the server's code now rather than at a timeout (docs/adapter.md "Transports").
  _refused(texts, error) {
    for (const text of texts) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        continue;
      }
      const settle = this._pendingAcks.get(frame?.ack);
      if (!settle) continue;
      this._pendingAcks.delete(frame.ack);
      settle(new RealtimeError(error.code, error.message || `HTTP ${error.status}`, error));
    }
  }

  _failPendingAcks() {
    const pending = [...this._pendingAcks.values()];
    this._pendingAcks.clear();
    // Ack ids belong to the socket that closed: no later socket can answer them.
    for (const settle of pending) {
      settle(new RealtimeError("disconnected", "the connection closed before the ack"));
    }
  }

  _failBuffer() {
    for (const item of this._buffer.splice(0)) {
      item.settle?.(new RealtimeError("disconnected", "not connected"));
    }
  }

  _teardown() {
    const ws = this._ws;
    this._ws = null;
    this.connected = false;
    this.id = undefined;
    if (this._heartbeat) clearInterval(this._heartbeat);
    this._heartbeat = null;
    this._endLifetime();
    this._failPendingAcks();
    this._failBuffer();
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  // --- token refresh (docs/protocol.md §3, `refresh`) ------------------------------

  // Send `refresh` before the token in force expires: at exp minus refreshMargin, or
  // minus a third of the time left when that is less, never in the past. A retry
  // waits half of what is left then.
  _scheduleRefresh(retry) {
    const lifetime = this._lifetime;
    if (!lifetime || typeof lifetime.exp !== "number") return; // a server without exp
    if (lifetime.timer) this._clearTimer(lifetime.timer);
    const left = Math.max(0, lifetime.exp * 1000 - Date.now());
    const wait = retry ? left / 2 : left - Math.min(this.options.refreshMargin, left / 3);
    lifetime.timer = this._setTimer(() => {
      lifetime.timer = null;
      this._refresh(lifetime, retry);
    }, Math.max(0, wait));
  }

  async _refresh(lifetime, retried) {
    const failed = (err) => {
      if (lifetime !== this._lifetime) return; // that connection is gone
      if (retried) this._fire("refresh_error", err);
      else this._scheduleRefresh(true);
    };
    let token;
    try {
      token = await this._token();
    } catch (err) {
      failed(new RealtimeError("unauthorized", `auth failed: ${err}`));
      return;
    }
    if (lifetime !== this._lifetime) return;
    if (token === lifetime.token) {
      // A static `auth` object has nothing newer to give: the server closes at exp
      // and the reconnect that follows (_lost) reports what auth says then. A
      // function may have a new token a little later.
      if (typeof this.auth === "function") {
        failed(new RealtimeError("unauthorized", "auth gave no newer token"));
      }
      return;
    }
    if (typeof token !== "string" || !token) {
      failed(new RealtimeError("unauthorized", "no token to refresh with"));
      return;
    }
    const settle = (err, data) => {
      if (lifetime !== this._lifetime) return;
      if (err) {
        failed(err);
        return;
      }
      lifetime.token = token; // accepted: the one to compare auth's next answer with
      if (typeof data?.exp === "number" && data.exp > lifetime.exp) {
        lifetime.exp = data.exp;
        this._scheduleRefresh(false);
      } else {
        failed(new RealtimeError("unauthorized", "the new token expires no later"));
      }
    };
    this._send("refresh", { token }, settle, {
      timeout: this.options.timeout,
      volatile: true,
    });
  }

  _endLifetime() {
    if (this._lifetime?.timer) this._clearTimer(this._lifetime.timer);
    this._lifetime = null;
  }

  // --- incoming frames ---------------------------------------------------------------

  _dispatch(frame) {
    if (typeof frame.ack === "number") {
      const settle = this._pendingAcks.get(frame.ack);
      if (!settle) return;
      this._pendingAcks.delete(frame.ack);
      if (frame.error) {
        settle(new RealtimeError(frame.error.code, frame.error.message, frame.error));
      } else {
        settle(null, frame.data ?? null);
      }
      return;
    }
    if (typeof frame.event !== "string") return;
    if (frame.event === "disconnect") {
      // Sent just before a forced close (4401); the close event does the rest.
      this._serverReason = frame.data?.reason ?? "";
      return;
    }
    if (typeof frame.call === "number") {
      this._answer(frame.event, frame.data, frame.call);
      return;
    }
    if (frame.event === "error" && !this._listeners.has("error")) {
      console.warn("realtime: server error", frame.data);
      return;
    }
    if (frame.event === "recovery") this._roomRecovery(frame.data);
    if (frame.event === "position") this._rooms.adoptStart({ [frame.data?.room]: frame.data });
    const seen = this._rooms.observe(frame);
    if (seen === "duplicate") return; // already delivered
    if (seen?.epochChanged) {
      // The room's history was lost: the page reloads it, then this event applies.
      this.recovered = false;
      this._fire("recovery_failed", seen.room, { reason: "epoch", ...position(seen) });
    }
    this.lastPosition = seen && { room: seen.room, ...position(seen) };
    try {
      this._fire(frame.event, frame.data);
    } finally {
      this.lastPosition = null;
    }
  }

  _answer(event, data, callId) {
    const ws = this._ws;
    const reply = (body) => {
      if (ws === this._ws && ws) ws.send(JSON.stringify({ reply: callId, ...body }));
    };
    const listeners = this.listeners(event);
    if (!listeners.length) {
      reply({ error: { code: "unknown_event", message: `no handler for '${event}'` } });
      return;
    }
    // The first listener answers: its return value, its promise, or (socket.io
    // style, when it takes a second parameter) the callback it calls.
    let answered = false;
    const answer = (value) => {
      if (answered) return;
      answered = true;
      reply({ data: value === undefined ? null : value });
    };
    const fail = (err) => {
      if (answered) return;
      answered = true;
      const code = typeof err?.code === "string" ? err.code : "internal";
      reply({ error: { code, message: String(err?.message ?? err).slice(0, 500) } });
    };
    listeners.forEach((listener, index) => {
      let result;
      try {
        result = listener.call(this, data, index === 0 ? answer : () => {});
      } catch (err) {
        if (index === 0) fail(err);
        else console.error(`realtime: a listener of '${event}' failed`, err);
        return;
      }
      if (index !== 0) return;
      if (result && typeof result.then === "function") result.then(answer, fail);
      else if (result !== undefined || listener.length < 2) answer(result);
    });
  }

  // --- recovery (issue 16: resumable delivery) --------------------------------------

  /** Positions per room, {room: {epoch, offset}}: a copy, for apps and tests. */
  get positions() {
    return this._rooms.snapshot();
  }

  /**
   * The events of `room` after `position` ({epoch, offset}), from the server's
   * history: a promise of the ack's data {recovered, epoch, offset, events, reason?}.
   */
  history(room, position) {
    const { epoch, offset } = position ?? {};
    return this.emitWithAck("history", { room, epoch, offset });
  }

  // The connect ack's recovery: sets `recovered` and returns [room, details] of the
  // rooms that failed, for recovery_failed (fired after `connect`).
  _connectRecovery(hello, reconnect) {
    this.recovered = reconnect && hello.recovered === true;
    const failed = [];
    for (const [room, result] of Object.entries(hello.recovery ?? {})) {
      const details = this._rooms.failure(room, result);
      if (details) failed.push([room, details]);
    }
    if (failed.length) this.recovered = false;
    this._rooms.adoptStart(hello.positions);
    return failed;
  }

  // The server's `recovery` event, for a room joined after connect (user-join).
  _roomRecovery(data) {
    if (!data || typeof data.room !== "string") return;
    const details = this._rooms.failure(data.room, data);
    if (!details) return;
    this.recovered = false;
    this._fire("recovery_failed", data.room, details);
  }

  // --- timers ------------------------------------------------------------------------

  _setTimer(fn, ms) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, ms);
    this._timers.add(timer);
    return timer;
  }

  _clearTimer(timer) {
    clearTimeout(timer);
    this._timers.delete(timer);
  }

  _clearAllTimers() {
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }
}
