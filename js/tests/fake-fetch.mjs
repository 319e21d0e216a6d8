// A scripted fetch() for the HTTP transport's unit tests: the test plays the server
// of docs/protocol.md "HTTP fallback", answering each request when it chooses.
import { until } from "./fake-socket.mjs";

const encoder = new TextEncoder();

/** One request the adapter made; the test answers it. */
export class FakeRequest {
  constructor(url, init = {}) {
    this.url = String(url);
    this.method = init.method ?? "GET";
    this.headers = { ...(init.headers ?? {}) };
    this.body = init.body ?? "";
    this.signal = init.signal;
    this.answered = false;
    this._stream = null; // the controller of an event stream's body
    this.response = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.signal?.addEventListener("abort", () => {
      const err = new DOMException("The operation was aborted.", "AbortError");
      this._reject(err);
      try {
        this._stream?.error(err);
      } catch {
        // already closed
      }
    });
  }
  get aborted() {
    return this.signal?.aborted ?? false;
  }
  /** The frames of the body (NDJSON), parsed. */
  get frames() {
    return this.body ? this.body.split("\n").map((line) => JSON.parse(line)) : [];
  }
  header(name) {
    const key = Object.keys(this.headers).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : this.headers[key];
  }
  /** Answer with a status and an optional JSON body. */
  respond(status, json) {
    this.answered = true;
    const body = json === undefined ? null : JSON.stringify(json);
    const headers = json === undefined ? {} : { "Content-Type": "application/json" };
    this._resolve(new Response(body, { status, headers }));
  }
  /** Fail as a network error does. */
  fail() {
    this.answered = true;
    this._reject(new TypeError("fetch failed"));
  }
  /** Answer 200 with an event stream that starts with the open event. */
  openStream(session = {}) {
    this.answered = true;
    const body = new ReadableStream({
      start: (controller) => {
        this._stream = controller;
      },
    });
    this._resolve(
      new Response(body, {
        status: 200,
        headers: { "Content-Type": "text/event-stream; charset=utf-8" },
      }),
    );
    const open = { sid: "sid-1", key: "key-1", keepalive: 15, ...session };
    this.write(`event: open\ndata: ${JSON.stringify(open)}\n\n`);
    return this;
  }
  /** Write raw text on the stream (a chunk as the network delivers it). */
  write(text) {
    this._stream.enqueue(encoder.encode(text));
  }
  /** Send one frame on the stream. */
  push(frame) {
    this.write(`data: ${JSON.stringify(frame)}\n\n`);
  }
  /** The close event with its code, then the end of the response. */
  close(code) {
    this.write(`event: close\ndata: ${JSON.stringify({ code })}\n\n`);
    this.end();
  }
  /** End the response (without a close event: a dropped connection). */
  end() {
    try {
      this._stream.close();
    } catch {
      // aborted already
    }
  }
}

/** fetch() for the adapter: `server.fetch`; every request is kept in `requests`. */
export class FakeServer {
  constructor() {
    this.requests = [];
    this.fetch = (url, init) => {
      const request = new FakeRequest(url, init);
      this.requests.push(request);
      return request.response;
    };
  }
  /** The stream requests (POST .../http/). */
  get streams() {
    return this.requests.filter((r) => r.url.endsWith("/http/"));
  }
  /** The POSTs of frames (POST .../http/<sid>/). */
  get posts() {
    return this.requests.filter((r) => !r.url.endsWith("/http/"));
  }
  async nextStream(count) {
    await until(() => this.streams.length >= count, `stream request ${count}`);
    return this.streams[count - 1];
  }
  async nextPost(count) {
    await until(() => this.posts.length >= count, `POST ${count}`);
    return this.posts[count - 1];
  }
  /** Open stream `count` and accept its connect frame (`ack`: more of the ack's data). */
  async accept(count = 1, sid = "sid-1", session = {}, ack = {}) {
    const stream = await this.nextStream(count);
    stream.openStream({ sid, key: `key-${sid}`, ...session });
    const user = { id: 1, name: "Alice", role: "user" };
    stream.push({ ack: 0, data: { sid, user, ...ack } });
    return stream;
  }
}
