// Unit tests of the browser adapter (realtime/static/realtime/realtime.js) under
// Node's test runner, with a scripted WebSocket standing in for the server.
// Run: node --test js/tests/   (the pytest suite runs this too)
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  backoffDelay,
  connect,
  DEFAULTS,
  RealtimeError,
  socketUrl,
} from "../../realtime/static/realtime/realtime.js";
import { adapterSockets, FakeSocket, tick, until } from "./fake-socket.mjs";

const open = adapterSockets(connect);

describe("backoff", () => {
  test("doubles from reconnectionDelay up to reconnectionDelayMax", () => {
    const exact = () => 0.5; // no jitter at the midpoint
    const delays = [0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, DEFAULTS, exact));
    assert.deepEqual(delays, [1000, 2000, 4000, 5000, 5000, 5000]);
  });

  test("jitter stays within randomizationFactor and under the maximum", () => {
    assert.equal(backoffDelay(0, DEFAULTS, () => 0), 500);
    assert.equal(backoffDelay(0, DEFAULTS, () => 0.999999), 1500);
    assert.equal(backoffDelay(5, DEFAULTS, () => 0.999999), 5000);
    assert.equal(backoffDelay(5, DEFAULTS, () => 0), 2500);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(1, DEFAULTS)));
    assert.ok(spread.size > 10, "delays are randomised");
    for (const d of spread) assert.ok(d >= 1000 && d <= 3000, d);
  });

  test("defaults match socket.io-client", () => {
    assert.equal(DEFAULTS.reconnectionDelay, 1000);
    assert.equal(DEFAULTS.reconnectionDelayMax, 5000);
    assert.equal(DEFAULTS.randomizationFactor, 0.5);
    assert.equal(DEFAULTS.heartbeatInterval, 30000);
  });

  test("attempts wait the backoff delays", async () => {
    const delays = [];
    const socket = open({ reconnectionDelay: 30, reconnectionDelayMax: 60 });
    let last = Date.now();
    socket.on("connect_error", () => {});
    for (let i = 0; i < 3; i++) {
      await until(() => FakeSocket.all.length === i + 1, `attempt ${i + 1}`);
      const now = Date.now();
      delays.push(now - last);
      last = now;
      FakeSocket.last.drop();
    }
    // attempt 2 after ~30±15 ms, attempt 3 after ~60 (max) ±30 ms; the upper bounds
    // leave room for a loaded machine but are far below the 1 s default.
    assert.ok(delays[1] >= 14 && delays[1] < 900, `second delay ${delays[1]}`);
    assert.ok(delays[2] >= 29 && delays[2] < 900, `third delay ${delays[2]}`);
  });
});

describe("url", () => {
  test("http becomes ws with the endpoint path; the query is dropped", () => {
    assert.equal(socketUrl("http://h:8000"), "ws://h:8000/ws/");
    assert.equal(socketUrl("https://h/?token=x"), "wss://h/ws/");
    assert.equal(socketUrl("ws://h/custom/"), "ws://h/custom/");
    assert.equal(socketUrl("", "/ws/", "https://page.test/chat/"), "wss://page.test/ws/");
  });
});

describe("connecting", () => {
  test("authenticates with the first frame and reports id and connected", async () => {
    const socket = open();
    const connected = new Promise((resolve) => socket.on("connect", resolve));
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept("abc");
    await connected;
    assert.deepEqual(FakeSocket.last.sent[0], {
      event: "connect",
      data: { token: "tok" },
      ack: 0,
    });
    assert.equal(socket.id, "abc");
    assert.equal(socket.connected, true);
    assert.equal(FakeSocket.last.url, "ws://example.test/ws/");
  });

  test("a refused token is a connect_error and no retry", async () => {
    const socket = open();
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    await until(() => FakeSocket.last, "a socket");
    FakeSocket.last.open();
    FakeSocket.last.push({
      ack: 0,
      error: { code: "unauthorized", message: "token is invalid or expired" },
    });
    FakeSocket.last.drop(4401);
    await until(() => errors.length, "connect_error");
    assert.equal(errors[0].code, "unauthorized");
    assert.equal(errors[0].data.message, "token is invalid or expired");
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(FakeSocket.all.length, 1, "no reconnect after unauthorized");
    assert.equal(socket.active, false);
  });

  test("asks for a fresh token before every attempt", async () => {
    let n = 0;
    const socket = open({ auth: (cb) => cb({ token: `tok-${++n}` }) });
    await until(() => FakeSocket.all.length === 1, "first socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    FakeSocket.last.drop(1012);
    await until(() => FakeSocket.all.length === 2, "reconnect");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected again");
    assert.equal(FakeSocket.all[0].sent[0].data.token, "tok-1");
    assert.equal(FakeSocket.all[1].sent[0].data.token, "tok-2");
  });

  test("an async auth function works too", async () => {
    const socket = open({ auth: async () => ({ token: "from-promise" }) });
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    assert.equal(FakeSocket.last.sent[0].data.token, "from-promise");
  });

  test("after a reconnect it re-sends user-join before buffered emits", async () => {
    const socket = open();
    const reasons = [];
    socket.on("disconnect", (reason) => reasons.push(reason));
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept("one");
    await until(() => socket.connected, "connected");
    socket.emit("user-join", { auth: { token: "tok" } });
    FakeSocket.last.drop(1012);
    assert.equal(socket.connected, false);
    assert.deepEqual(reasons, ["transport close"]);
    socket.emit("later", { n: 1 });
    await until(() => FakeSocket.all.length === 2, "reconnect");
    const second = FakeSocket.last;
    const joinedInConnect = [];
    socket.once("connect", () => joinedInConnect.push(second.sent.map((f) => f.event)));
    await second.accept("two");
    await until(() => socket.connected, "connected again");
    assert.equal(socket.id, "two");
    assert.deepEqual(
      second.sent.map((f) => f.event),
      ["connect", "user-join", "later"],
    );
    assert.deepEqual(second.frames("user-join")[0].data, { auth: { token: "tok" } });
    assert.deepEqual(joinedInConnect, [["connect", "user-join"]]);
  });

  test("a forced disconnect (4401) is final and reports the server's reason", async () => {
    const socket = open();
    const seen = [];
    socket.on("disconnect", (reason, details) => seen.push([reason, details.reason]));
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    FakeSocket.last.push({ event: "disconnect", data: { reason: "password changed" } });
    FakeSocket.last.drop(4401);
    assert.deepEqual(seen, [["io server disconnect", "password changed"]]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(FakeSocket.all.length, 1);
  });

  test("disconnect() stops reconnecting; connect() starts again", async () => {
    const socket = open();
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    const reasons = [];
    socket.on("disconnect", (reason) => reasons.push(reason));
    socket.disconnect();
    assert.deepEqual(reasons, ["io client disconnect"]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(FakeSocket.all.length, 1);
    socket.connect();
    await until(() => FakeSocket.all.length === 2, "a new socket");
  });

  test("sends heartbeat at the interval while connected", async () => {
    const socket = open({ heartbeatInterval: 20 });
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => FakeSocket.last.frames("heartbeat").length >= 2, "heartbeats");
    assert.deepEqual(FakeSocket.last.frames("heartbeat")[0], {
      event: "heartbeat",
      data: null,
    });
    const ws = FakeSocket.last;
    ws.drop();
    const count = ws.frames("heartbeat").length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(ws.frames("heartbeat").length, count, "no heartbeat when closed");
    assert.equal(socket.connected, false);
  });
});

describe("acks", () => {
  async function connected(options) {
    const socket = open(options);
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    return [socket, FakeSocket.last];
  }

  test("emit with a callback gets the ack's data", async () => {
    const [socket, ws] = await connected();
    const got = new Promise((resolve) => socket.emit("user-list", null, resolve));
    const frame = ws.frames("user-list")[0];
    assert.equal(typeof frame.ack, "number");
    assert.notEqual(frame.ack, 0);
    ws.push({ ack: frame.ack, data: { user_ids: [1, 2] } });
    assert.deepEqual(await got, { user_ids: [1, 2] });
  });

  test("emitWithAck resolves, and rejects on an error reply", async () => {
    const [socket, ws] = await connected();
    const ok = socket.emitWithAck("a", {});
    const bad = socket.emitWithAck("b", {});
    const [fa, fb] = [ws.frames("a")[0], ws.frames("b")[0]];
    assert.notEqual(fa.ack, fb.ack);
    ws.push({ ack: fb.ack, error: { code: "bad_request", message: "b: nope" } });
    ws.push({ ack: fa.ack, data: null });
    assert.equal(await ok, null);
    await assert.rejects(bad, (err) => {
      assert.ok(err instanceof RealtimeError);
      assert.equal(err.code, "bad_request");
      assert.equal(err.message, "b: nope");
      return true;
    });
  });

  test("timeout(ms) fails an emit that gets no ack", async () => {
    const [socket, ws] = await connected();
    const started = Date.now();
    await assert.rejects(socket.timeout(30).emitWithAck("slow", {}), {
      code: "timeout",
    });
    assert.ok(Date.now() - started >= 25);
    // the late ack is ignored
    ws.push({ ack: ws.frames("slow")[0].ack, data: 1 });
    const viaCallback = await new Promise((resolve) =>
      socket.timeout(10).emit("slow2", {}, (err, data) => resolve([err, data])),
    );
    assert.equal(viaCallback[0].code, "timeout");
    assert.equal(viaCallback[1], undefined);
  });

  test("timeout(ms) passes (null, data) when the ack comes in time", async () => {
    const [socket, ws] = await connected();
    const got = new Promise((resolve) =>
      socket.timeout(1000).emit("q", {}, (err, data) => resolve([err, data])),
    );
    ws.push({ ack: ws.frames("q")[0].ack, data: { x: 1 } });
    assert.deepEqual(await got, [null, { x: 1 }]);
  });

  test("acks pending when the connection drops fail with disconnected", async () => {
    const [socket, ws] = await connected();
    const pending = socket.emitWithAck("x", {});
    ws.drop();
    await assert.rejects(pending, { code: "disconnected" });
  });

  test("a plain callback gets a RealtimeError for an error reply", async () => {
    const [socket, ws] = await connected();
    const got = new Promise((resolve) => socket.emit("x", {}, resolve));
    ws.push({ ack: ws.frames("x")[0].ack, error: { code: "forbidden", message: "no" } });
    const result = await got;
    assert.ok(result instanceof Error);
    assert.equal(result.code, "forbidden");
  });
});

describe("buffering", () => {
  test("emits while disconnected are sent in order after connecting", async () => {
    const socket = open();
    socket.emit("one", { n: 1 });
    const acked = socket.emitWithAck("two", { n: 2 });
    await until(() => FakeSocket.last, "a socket");
    const ws = FakeSocket.last;
    await ws.accept();
    await until(() => ws.frames("two").length, "buffered emits");
    assert.deepEqual(
      ws.sent.map((f) => f.event),
      ["connect", "one", "two"],
    );
    ws.push({ ack: ws.frames("two")[0].ack, data: "ok" });
    assert.equal(await acked, "ok");
  });

  test("the buffer is bounded: the oldest emit is dropped with a warning", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    const socket = open({ maxBufferedEmits: 3, autoConnect: false });
    const first = socket.emitWithAck("e0", {});
    for (let i = 1; i < 5; i++) socket.emit(`e${i}`, {});
    await assert.rejects(first, { code: "dropped" });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /dropped the oldest emit 'e0'/);
    socket.connect();
    await until(() => FakeSocket.last, "a socket");
    const ws = FakeSocket.last;
    await ws.accept();
    await until(() => ws.sent.length === 4, "the buffered emits");
    assert.deepEqual(
      ws.sent.map((f) => f.event),
      ["connect", "e2", "e3", "e4"],
    );
  });

  test("reserved names cannot be emitted", () => {
    const socket = open({ autoConnect: false });
    assert.throws(() => socket.emit("connect", {}), /reserved/);
  });
});

describe("events and server calls", () => {
  async function connected() {
    const socket = open();
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    return [socket, FakeSocket.last];
  }

  test("on, once and off", async () => {
    const [socket, ws] = await connected();
    const seen = [];
    const listener = (data) => seen.push(["on", data.n]);
    socket.on("tick", listener);
    socket.once("tick", (data) => seen.push(["once", data.n]));
    ws.push({ event: "tick", data: { n: 1 } });
    ws.push({ event: "tick", data: { n: 2 } });
    socket.off("tick", listener);
    ws.push({ event: "tick", data: { n: 3 } });
    assert.deepEqual(seen, [
      ["on", 1],
      ["once", 1],
      ["on", 2],
    ]);
  });

  test("a call is answered with the handler's return value", async () => {
    const [socket, ws] = await connected();
    socket.on("events", (data) => ({ result: data.data.data.code.length }));
    ws.push({ event: "events", data: { data: { data: { code: "1+1" } } }, call: 3 });
    await until(() => ws.sent.some((f) => f.reply === 3), "the reply");
    assert.deepEqual(ws.sent.at(-1), { reply: 3, data: { result: 3 } });
  });

  test("a call is answered with the handler's promise, or its error", async () => {
    const [socket, ws] = await connected();
    socket.on("ask", async (data) => {
      await tick();
      if (data.fail) throw new RealtimeError("declined", "user said no");
      return { ok: true };
    });
    ws.push({ event: "ask", data: {}, call: 1 });
    ws.push({ event: "ask", data: { fail: true }, call: 2 });
    await until(() => ws.sent.filter((f) => "reply" in f).length === 2, "replies");
    const replies = Object.fromEntries(
      ws.sent.filter((f) => "reply" in f).map((f) => [f.reply, f]),
    );
    assert.deepEqual(replies[1], { reply: 1, data: { ok: true } });
    assert.deepEqual(replies[2], {
      reply: 2,
      error: { code: "declined", message: "user said no" },
    });
  });

  test("a socket.io style callback answers a call", async () => {
    const [socket, ws] = await connected();
    socket.on("ask", (data, callback) => {
      setTimeout(() => callback({ late: true }), 5);
    });
    ws.push({ event: "ask", data: {}, call: 9 });
    await until(() => ws.sent.some((f) => f.reply === 9), "the reply");
    assert.deepEqual(ws.sent.at(-1), { reply: 9, data: { late: true } });
  });

  test("a call with no handler is declined", async () => {
    const [, ws] = await connected();
    ws.push({ event: "nobody", data: {}, call: 5 });
    assert.equal(ws.sent.at(-1).reply, 5);
    assert.equal(ws.sent.at(-1).error.code, "unknown_event");
  });
});
