// A scripted WebSocket for the adapter's unit tests: the test plays the server.
import assert from "node:assert/strict";
import { afterEach, beforeEach } from "node:test";

export const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

export async function until(predicate, what, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A WebSocket whose server side the test drives. */
export class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
  }
  static get last() {
    return FakeSocket.all.at(-1);
  }
  send(text) {
    assert.equal(this.closed, false, "send on a closed socket");
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000) {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.onclose?.({ code }), 0);
  }
  // --- server side
  open() {
    this.onopen?.();
  }
  push(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006) {
    this.closed = true;
    this.onclose?.({ code });
  }
  frames(event) {
    return this.sent.filter((f) => f.event === event);
  }
  /** Open and accept the connect frame. */
  async accept(sid = "sid-1") {
    this.open();
    await until(() => this.frames("connect").length, "the connect frame");
    this.push({ ack: 0, data: { sid, user: { id: 1, name: "Alice", role: "user" } } });
  }
}

/**
 * `open(options)` for a test file: an adapter socket on FakeSocket (WebSocket only:
 * the HTTP fallback has its own tests) with short reconnect delays, every one
 * disconnected after each test.
 */
export function adapterSockets(connect) {
  let sockets = [];
  beforeEach(() => {
    FakeSocket.all = [];
    sockets = [];
  });
  afterEach(() => {
    for (const socket of sockets) socket.disconnect();
  });
  return function open(options = {}) {
    const socket = connect("http://example.test", {
      auth: { token: "tok" },
      WebSocket: FakeSocket,
      transports: ["websocket"],
      reconnectionDelay: 5,
      reconnectionDelayMax: 20,
      ...options,
    });
    sockets.push(socket);
    return socket;
  };
}
