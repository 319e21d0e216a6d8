// The HTTP fallback transport (docs/protocol.md §10): the
// frames of /ws/ over fetch() for networks that block WebSockets. Server frames come
// down one streamed `POST <path>http/` (Server-Sent Events); the page's frames go up
// in `POST <path>http/<sid>/`, one request at a time, in order. HttpTransport looks
// like a WebSocket to realtime.js: send(text), close(code), onopen/onmessage/onclose.

const NDJSON = "application/x-ndjson";
// Until the stream's open event gives the server's values: its defaults
// (HTTP_KEEPALIVE seconds, HTTP_POST_MAX_FRAMES, HTTP_POST_MAX_BYTES = MAX_FRAME_BYTES).
const DEFAULT_KEEPALIVE = 15;
const DEFAULT_MAX_FRAMES = 256;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
// A stream that reads nothing, not even a keep-alive, for 2 x keepalive + this many
// seconds is dead (a proxy holding it open, a network gone quiet): the spec's rule.
const LIVENESS_GRACE = 5;
// A POST lost in transit (network error, 5xx, 429) goes again with the same seq
// after this delay, doubled per failure: soon enough not to stall a chat, slow
// enough not to hammer a struggling server.
const RETRY_DELAY = 250;
const RETRY_DELAY_MAX = 4000;
// The close code a browser reports for a WebSocket dropped without a close frame:
// the stream ended (or failed) without its close event, the session is gone.
const ABNORMAL = 1006;
// No code given to close(), as WebSocket reports it.
const NO_STATUS = 1005;
// POST answers that refuse the batch but leave the session usable (the server took
// nothing): its frames are dropped and reported, the next batch reuses the seq.
const REFUSED = new Set([400, 413, 415]);

const encoder = new TextEncoder();

/** The stream URL for the WebSocket URL of an endpoint: `<path>http/`, over http(s). */
export function streamUrl(socketUrl) {
  const url = new URL(socketUrl);
  if (url.protocol === "ws:") url.protocol = "http:";
  if (url.protocol === "wss:") url.protocol = "https:";
  let path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
  // Open WebUI's socket.io path is an alias of /ws/: its stream is /ws/http/ too.
  path = path.replace(/socket\.io\/$/, "");
  url.pathname = `${path}http/`;
  url.search = "";
  url.hash = "";
  return url.toString();
}

// The JSON error of a refused request, {code, message}, or one made from the status.
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body?.error?.code) return { status: response.status, ...body.error };
  } catch {
    // not JSON: a proxy's page
  }
  return { status: response.status, code: `http_${response.status}`, message: "" };
}

export class HttpTransport {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  /**
   * Open the stream at `url` (streamUrl()). `onopen` runs at once, in a microtask,
   * so that the frames it sends (the connect frame) travel in the body of the open
   * POST, where the spec puts the token; the stream's health shows in onmessage and
   * onclose.
   */
  constructor(url, { fetch } = {}) {
    this.url = url;
    this.readyState = HttpTransport.CONNECTING;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    /** Called with (texts, {status, code, message}) for frames the server refused. */
    this.onrefused = null;
    this._fetch = fetch ?? ((...args) => globalThis.fetch(...args));
    this._abort = new AbortController();
    this._queue = []; // {text, bytes} waiting for a POST
    this._posting = false;
    this._session = null; // the open event: {sid, key, keepalive, post_max_*}
    this._seq = 1; // the seq of the next batch (a retry keeps its own)
    this._liveness = null;
    this._retry = null; // {timer, resolve} of a POST waiting to be sent again
    queueMicrotask(() => {
      if (this.readyState !== HttpTransport.CONNECTING) return;
      this.readyState = HttpTransport.OPEN;
      this.onopen?.({ type: "open" });
      this._stream();
    });
  }

  /** Queue one frame; frames queued while a POST is out go in the next one. */
  send(text) {
    if (this.readyState === HttpTransport.CONNECTING) {
      throw new Error("realtime: send before the HTTP transport is open");
    }
    if (this.readyState !== HttpTransport.OPEN) return; // closed: lost, as on a WebSocket
    this._queue.push({ text, bytes: encoder.encode(text).length });
    this._pump();
  }

  /** Close: abort the stream and any POST; onclose follows, as on a WebSocket. */
  close(code = NO_STATUS, reason = "") {
    if (this.readyState >= HttpTransport.CLOSING) return;
    this.readyState = HttpTransport.CLOSING;
    this._end();
    setTimeout(() => this._closed(code, reason), 0);
  }

  // --- downstream: the event stream ----------------------------------------------

  async _stream() {
    // The frames sent by onopen (the connect frame) are the body of the open POST.
    const body = this._queue.splice(0).map((item) => item.text).join("\n");
    this._alive(); // a response that never comes is a silent stream too
    let response;
    try {
      response = await this._fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": NDJSON },
        body,
        cache: "no-store",
        signal: this._abort.signal,
      });
    } catch (err) {
      this._lost(`stream failed: ${err?.message ?? err}`);
      return;
    }
    if (this.readyState !== HttpTransport.OPEN) return;
    const type = response.headers.get("content-type") ?? "";
    if (response.status !== 200 || !type.startsWith("text/event-stream")) {
      const error = await errorOf(response);
      this._lost(`stream refused: HTTP ${response.status} ${error.code}`);
      return;
    }
    this._alive();
    try {
      await this._read(response.body.getReader());
    } catch (err) {
      this._lost(`stream failed: ${err?.message ?? err}`);
      return;
    }
    // A stream that ends without its close event is a dropped connection.
    this._lost("stream ended");
  }

  // Server-Sent Events, line by line: a line may arrive in many chunks (a large
  // frame), so the partial line is kept in pieces and joined once.
  async _read(reader) {
    const decoder = new TextDecoder();
    let partial = [];
    let event = { type: "", data: [] };
    while (this.readyState === HttpTransport.OPEN) {
      const { value, done } = await reader.read();
      if (done || this.readyState !== HttpTransport.OPEN) return;
      this._alive();
      const lines = decoder.decode(value, { stream: true }).split("\n");
      partial.push(lines[0]);
      for (let i = 1; i < lines.length; i++) {
        let line = partial.join("");
        partial = [lines[i]];
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (event.data.length || event.type) this._event(event.type, event.data.join("\n"));
          event = { type: "", data: [] };
          if (this.readyState !== HttpTransport.OPEN) return;
          continue;
        }
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let data = colon < 0 ? "" : line.slice(colon + 1);
        if (data.startsWith(" ")) data = data.slice(1);
        if (field === "event") event.type = data;
        else if (field === "data") event.data.push(data);
      }
    }
  }

  _event(type, data) {
    if (type === "" || type === "message") {
      this.onmessage?.({ type: "message", data });
    } else if (type === "open") {
      this._session = JSON.parse(data);
      this._alive();
      this._pump();
    } else if (type === "close") {
      let code;
      try {
        code = JSON.parse(data).code;
      } catch {
        // a close without a readable code is still the end
      }
      this._lost("closed by the server", Number.isInteger(code) ? code : ABNORMAL);
    }
  }

  // Anything read proves the stream alive: the dead-stream timer starts again.
  _alive() {
    clearTimeout(this._liveness);
    const keepalive = this._session?.keepalive ?? DEFAULT_KEEPALIVE;
    const ms = (2 * keepalive + LIVENESS_GRACE) * 1000;
    this._liveness = setTimeout(() => this._lost(`stream silent for ${ms} ms`), ms);
  }

  // --- upstream: one POST at a time -----------------------------------------------

  _pump() {
    if (this._posting || !this._session || this.readyState !== HttpTransport.OPEN) return;
    const batch = this._batch();
    if (batch.length) this._post(batch);
  }

  // The frames of the next POST: as many queued ones as the server's limits allow.
  // One frame over post_max_bytes alone can never be taken: it is refused here.
  _batch() {
    const maxFrames = this._session.post_max_frames ?? DEFAULT_MAX_FRAMES;
    const maxBytes = this._session.post_max_bytes ?? DEFAULT_MAX_BYTES;
    const batch = [];
    let bytes = 0;
    while (this._queue.length && batch.length < maxFrames) {
      const item = this._queue[0];
      if (!batch.length && item.bytes > maxBytes) {
        this._queue.shift();
        this._refused([item.text], {
          status: 413,
          code: "bad_request", // the server's code for its 413
          message: `a frame of ${item.bytes} bytes is over post_max_bytes (${maxBytes})`,
        });
        continue;
      }
      const size = bytes + item.bytes + (batch.length ? 1 : 0); // "\n" between frames
      if (size > maxBytes) break;
      batch.push(this._queue.shift().text);
      bytes = size;
    }
    return batch;
  }

  async _post(batch) {
    this._posting = true;
    const seq = this._seq;
    const { sid, key } = this._session;
    const url = new URL(`${encodeURIComponent(sid)}/`, this.url).toString();
    const body = batch.join("\n");
    let delay = RETRY_DELAY;
    for (;;) {
      let response = null;
      try {
        response = await this._fetch(url, {
          method: "POST",
          headers: {
            "Content-Type": NDJSON,
            "X-Realtime-Key": key,
            "X-Realtime-Seq": String(seq),
          },
          body,
          cache: "no-store",
          signal: this._abort.signal,
        });
      } catch {
        // lost in transit (or aborted: checked next)
      }
      if (this.readyState !== HttpTransport.OPEN) return;
      const status = response?.status;
      if (status >= 200 && status < 300) {
        this._seq = seq + 1;
        break;
      }
      if (response === null || status === 429 || status >= 500) {
        // Nothing or not all of it may have been taken: the same seq again is
        // taken once (the server answers a seq it has with 204).
        await this._wait(delay);
        if (this.readyState !== HttpTransport.OPEN) return;
        delay = Math.min(delay * 2, RETRY_DELAY_MAX);
        continue;
      }
      const error = await errorOf(response);
      if (this.readyState !== HttpTransport.OPEN) return;
      if (REFUSED.has(status)) {
        this._refused(batch, error);
        break;
      }
      // 404: the session is gone; 403 (not our key), 409 (seq out of order) or any
      // other answer: this session cannot take our frames. A new one (with recover)
      // can: the stream is dropped and the adapter reconnects.
      if (status !== 404) {
        console.warn(`realtime: HTTP POST refused (${status} ${error.code}); reconnecting`);
      }
      this._lost(`POST answered ${status} ${error.code}`);
      return;
    }
    this._posting = false;
    this._pump();
  }

  _refused(texts, error) {
    console.warn(
      `realtime: the server refused ${texts.length} frame(s): ` +
        `${error.status} ${error.code}${error.message ? `: ${error.message}` : ""}`,
    );
    this.onrefused?.(texts, error);
  }

  _wait(ms) {
    return new Promise((resolve) => {
      this._retry = { timer: setTimeout(resolve, ms), resolve };
    });
  }

  // --- the end ---------------------------------------------------------------------

  // The connection is gone (not by close()): end everything, then onclose.
  _lost(reason, code = ABNORMAL) {
    if (this.readyState !== HttpTransport.OPEN) return;
    this.readyState = HttpTransport.CLOSING;
    this._end();
    this._closed(code ?? ABNORMAL, reason);
  }

  _end() {
    clearTimeout(this._liveness);
    if (this._retry) {
      clearTimeout(this._retry.timer);
      this._retry.resolve();
    }
    this._queue = [];
    // The server ends the session when the stream's request goes away.
    this._abort.abort();
  }

  _closed(code, reason) {
    this.readyState = HttpTransport.CLOSED;
    this.onclose?.({ type: "close", code, reason, wasClean: code !== ABNORMAL });
  }
}
