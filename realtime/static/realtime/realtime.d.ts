// Types of realtime.js, the browser adapter for the realtime backend (docs/adapter.md).

export interface AuthData {
  token: string;
}

/** `auth` as an object, a socket.io-style `(cb) => cb({token})`, or an async function
 * returning `{token}`; a function is called before every (re)connect and before the
 * token in force expires, for the in-band `refresh` (docs/adapter.md). */
export type Auth =
  | AuthData
  | ((callback: (data: AuthData) => void) => void)
  | (() => AuthData | Promise<AuthData>);

export interface SocketOptions {
  auth?: Auth;
  /** Reconnect after a lost connection (default true). */
  reconnection?: boolean;
  /** Give up after this many failed attempts in a row (default Infinity). */
  reconnectionAttempts?: number;
  /** First reconnect delay in ms (default 1000); doubles per attempt. */
  reconnectionDelay?: number;
  /** Longest reconnect delay in ms (default 5000). */
  reconnectionDelayMax?: number;
  /** Spread of each delay, 0..1 (default 0.5: ±50 %). */
  randomizationFactor?: number;
  /** Milliseconds to wait for the connect ack (default 20000). */
  timeout?: number;
  /** Milliseconds between `heartbeat` emits while connected (default 30000). */
  heartbeatInterval?: number;
  /** Emits kept while disconnected (default 100); the oldest is dropped beyond. */
  maxBufferedEmits?: number;
  /** Ask `auth` for a new token and send `refresh` this many ms before the token's
   * `exp` from the connect ack, or a third of the time left when that is less
   * (default 60000). */
  refreshMargin?: number;
  /** Endpoint path (default "/ws/", used when the URL has none). Given explicitly it
   * replaces the URL's path, as in socket.io-client; a trailing slash is added. A
   * socket.io path (ending in "/socket.io", Open WebUI's "/ws/socket.io") turns
   * socket.io-compatible mode on. */
  path?: string;
  /** The transports to use (default ["websocket", "http"]): "websocket", and "http",
   * the HTTP fallback (docs/adapter.md "Transports"), also named "polling" as in
   * socket.io-client. With both, every attempt tries the WebSocket first, whatever the
   * order, and falls back to HTTP when it brings no frame; ["websocket"] never falls
   * back, ["http"] never tries a WebSocket. Any other name throws. */
  transports?: Array<"websocket" | "http" | "polling">;
  /** Milliseconds a WebSocket may take to open, and then to bring its first frame,
   * before the attempt falls back to HTTP (default 5000); only with both transports. */
  fallbackTimeout?: number;
  /** socket.io-compatible mode (default: on for a socket.io `path`): plain acks get
   * the value alone, `null` for an error reply; the connect frame names `protocol`. */
  socketio?: boolean;
  /** The dialect of the connect frame (docs/protocol.md §3): default "openwebui" in
   * socket.io-compatible mode, otherwise none is sent (the server's "realtime"). */
  protocol?: "openwebui" | "realtime";
  /** Connect at once (default true); otherwise call `socket.connect()`. */
  autoConnect?: boolean;
  /** WebSocket constructor to use (tests, Node); default `globalThis.WebSocket`. */
  WebSocket?: new (url: string) => WebSocket;
  /** fetch() for the HTTP transport (tests); default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Random source for the backoff jitter (tests); default Math.random. */
  random?: () => number;
}

export const DEFAULTS: Readonly<
  Required<
    Omit<SocketOptions, "auth" | "WebSocket" | "fetch" | "random" | "socketio" | "protocol">
  >
>;

/** Error replies, refused connects and adapter failures. Server codes are those of
 * docs/protocol.md §4 (over HTTP also those of a refused POST of frames, e.g.
 * `bad_request` for a 413); the adapter adds `timeout`, `disconnected`, `dropped`, `transport`. */
export class RealtimeError extends Error {
  code: string;
  data: { code: string; message?: string; [key: string]: unknown };
  constructor(code: string, message?: string, data?: object);
}

export type TransportName = "websocket" | "http";

export type DisconnectReason = "io server disconnect" | "io client disconnect" | "transport close";

export interface DisconnectDetails {
  /** WebSocket close code, e.g. 4401, 1012, 1006; over HTTP the code of the stream's
   * close event, or 1006 when it ended without one. */
  code?: number;
  /** The server's reason from its `disconnect` event (forced disconnects), e.g.
   * "password changed"; "token expired" comes with reason "transport close" and a
   * reconnect that asks `auth` again. */
  reason?: string;
}

/** Where an event stands in its room's history (docs/protocol.md, issue 16). */
export interface Position {
  /** Opaque; changes when the room's history was lost. */
  epoch: string;
  /** +1 per event of the room within an epoch. */
  offset: number;
}

/** The position of a delivered event: `socket.lastPosition` while its listeners run. */
export interface EventPosition extends Position {
  room: string;
}

/** Why a room could not be recovered, and the position the adapter adopted. */
export interface RecoveryFailure extends Position {
  reason: "epoch" | "trimmed" | "expired" | "ahead" | "disabled" | string;
}

/** The server's `recovery` event: a room joined after connect (user-join). */
export interface RecoveryEvent extends Position {
  room: string;
  recovered: boolean;
  replayed?: number;
  reason?: RecoveryFailure["reason"];
}

/** The `history` ack: the room's events after the given position. */
export interface HistoryReply extends Position {
  recovered: boolean;
  reason?: RecoveryFailure["reason"];
  /** In order; `offset` of each is its position in the room. */
  events: Array<{ event: string; data: any; offset: number }>;
}

/** A server call handler: its return value or promise is the reply; or, when it takes
 * a second parameter, the value it passes to `callback`. */
export type Listener = (data: any, callback?: (value: unknown) => void) => unknown;

/** `socket.timeout(ms)` and `socket.volatile`, chainable in either order. After
 * `timeout(ms)` an ack is error-first: `(err, data)`. */
export interface Emitter {
  emit(event: string, data?: unknown, ack?: (...args: any[]) => void): Socket;
  emitWithAck<T = any>(event: string, data?: unknown): Promise<T>;
  timeout(ms: number): TimedEmitter;
  /** Drop emits made while disconnected instead of buffering them. */
  readonly volatile: Emitter;
}

export interface TimedEmitter extends Emitter {
  emit(event: string, data: unknown, ack?: (err: RealtimeError | null, data?: any) => void): Socket;
  readonly volatile: TimedEmitter;
}

export class Socket {
  constructor(url: string | undefined, options?: SocketOptions);
  /** The session id (`sid`) while connected. */
  id: string | undefined;
  /** The user from the connect ack while connected. */
  user: { id: number; name: string; role: string } | undefined;
  connected: boolean;
  readonly disconnected: boolean;
  /** True while connected or trying to connect. */
  readonly active: boolean;
  auth: Auth | undefined;
  /** Whether socket.io-compatible mode is on. */
  readonly socketio: boolean;
  /** The dialect sent in the connect frame, if any. */
  readonly protocol: "openwebui" | "realtime" | undefined;
  /** socket.io-client's flag: false on the first connect; after a reconnect, true iff
   * every presented room recovered (the ack's `recovered`), until one fails. */
  recovered: boolean;
  /** The room, epoch and offset of the event whose listeners are running (read it
   * synchronously in the listener); null otherwise and for events without one. */
  readonly lastPosition: EventPosition | null;
  /** A copy of the last position seen per room, presented on a reconnect. */
  readonly positions: Record<string, Position>;
  /** socket.io-client's Manager, reduced to the transport of the connection or of the
   * attempt in progress (`undefined` before the first attempt). */
  readonly io: { engine: { transport: { name: TransportName | undefined } } };
  /** The HTTP transport's stream URL, `<path>http/` (`/ws/http/` for /ws/socket.io). */
  readonly streamUrl: string;

  on(event: "connect", listener: () => void): this;
  on(event: "disconnect", listener: (reason: DisconnectReason, details?: DisconnectDetails) => void): this;
  on(event: "connect_error", listener: (err: RealtimeError) => void): this;
  /** The in-band token refresh failed twice (server refusal such as `unauthorized`
   * or `forbidden`, `timeout`, or `unauthorized` when `auth` failed or had no newer
   * token); the socket stays until the server closes it at the token's expiry. */
  on(event: "refresh_error", listener: (err: RealtimeError) => void): this;
  on(event: "recovery_failed", listener: (room: string, details: RecoveryFailure) => void): this;
  on(event: "recovery", listener: (data: RecoveryEvent) => void): this;
  /** Where the socket starts in a history room entered after connect. */
  on(event: "position", listener: (data: EventPosition) => void): this;
  /** A transport is tried: "websocket" first in an attempt (`reason` undefined), then
   * "http" when the adapter falls back, with the reason (e.g. "websocket closed (1006)
   * before any frame", "no frame from websocket in 5000 ms"). */
  on(event: "transport", listener: (name: TransportName, reason?: string) => void): this;
  on(event: string, listener: Listener): this;
  once(event: string, listener: Listener): this;
  off(event?: string, listener?: Listener): this;
  listeners(event: string): Listener[];

  /** Send an event; `ack` gets the data; for an error reply a RealtimeError, or
   * `null` in socket.io-compatible mode. */
  emit(event: string, data?: unknown, ack?: (response: any) => void): this;
  emitWithAck<T = any>(event: string, data?: unknown): Promise<T>;
  timeout(ms: number): TimedEmitter;
  /** Emits dropped, not buffered, while disconnected (socket.io's `volatile`). */
  readonly volatile: Emitter;

  /** The events of `room` after `position` (the server's `history`, with ack);
   * rejects with a RealtimeError (`forbidden` when the socket is not in the room). */
  history(room: string, position: Position): Promise<HistoryReply>;

  connect(): this;
  open(): this;
  disconnect(): this;
  close(): this;
}

export function connect(url?: string, options?: SocketOptions): Socket;
export { connect as io };
export default connect;

/** Reconnect delay in ms before attempt `attempt` (0-based). */
export function backoffDelay(
  attempt: number,
  options?: Pick<SocketOptions, "reconnectionDelay" | "reconnectionDelayMax" | "randomizationFactor">,
  random?: () => number,
): number;

/** The WebSocket URL for a page-relative, http(s) or ws(s) URL. */
export function socketUrl(url?: string, path?: string, base?: string, force?: boolean): string;
