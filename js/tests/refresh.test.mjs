// The adapter's in-band token refresh (docs/adapter.md, "Token refresh"), under
// Node's mock timers: the clock (Date) and the timers move only when a test ticks.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { connect, RealtimeError } from "../../realtime/static/realtime/realtime.js";
import { FakeSocket } from "./fake-socket.mjs";

const NOW = 1_800_000_000_000; // ms; the tests' wall clock starts here
const at = (seconds) => NOW / 1000 + seconds; // an exp, `seconds` from the start
const SECOND = 1000;

let sockets = [];
function open(options = {}) {
  const socket = connect("http://example.test", {
    WebSocket: FakeSocket,
    transports: ["websocket"],
    reconnectionDelay: 10,
    reconnectionDelayMax: 10,
    random: () => 0.5,
    ...options,
  });
  sockets.push(socket);
  return socket;
}

// The adapter's own steps are promises (auth, then the socket): let them run. Not a
// timer, so the mocked clock does not move.
async function flush() {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Answer the connect frame of the latest socket with an ack carrying `exp`. */
async function accept(exp, sid = "sid-1") {
  await flush();
  const fake = FakeSocket.last;
  fake.open();
  assert.equal(fake.frames("connect").length, 1, "a connect frame");
  fake.push({ ack: 0, data: { sid, user: { id: 1, name: "Alice", role: "user" }, exp } });
  await flush();
  return fake;
}

async function advance(ms) {
  mock.timers.tick(ms);
  await flush();
}

/** An auth function handing out tok-1, tok-2, ... and counting its calls. */
function tokenSource() {
  const source = () => ({ token: `tok-${++source.calls}` });
  source.calls = 0;
  return source;
}

beforeEach(() => {
  FakeSocket.all = [];
  sockets = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: NOW });
});
afterEach(() => {
  for (const socket of sockets) socket.disconnect();
  mock.timers.reset();
});

describe("token refresh", () => {
  test("refreshes 60 s before exp, in-band, and again before the new exp", async () => {
    const auth = tokenSource();
    const socket = open({ auth });
    const fake = await accept(at(900)); // a 15-minute token
    assert.equal(fake.frames("connect")[0].data.token, "tok-1");

    await advance(840 * SECOND - 1);
    assert.equal(fake.frames("refresh").length, 0, "not before exp - 60 s");
    await advance(1);
    const [refresh] = fake.frames("refresh");
    assert.deepEqual(refresh.data, { token: "tok-2" });
    assert.equal(typeof refresh.ack, "number", "sent with an ack");
    fake.push({ ack: refresh.ack, data: { exp: at(1800) } });
    await flush();

    // No new connection, same socket id; the next refresh is at the new exp - 60 s.
    assert.equal(FakeSocket.all.length, 1);
    assert.equal(socket.id, "sid-1");
    assert.ok(socket.connected);
    await advance(899 * SECOND);
    assert.equal(fake.frames("refresh").length, 1);
    await advance(SECOND);
    assert.deepEqual(fake.frames("refresh")[1].data, { token: "tok-3" });
  });

  test("the margin is a third of the time left when that is under a minute", async () => {
    const socket = open({ auth: tokenSource() });
    const fake = await accept(at(30));
    await advance(20 * SECOND - 1);
    assert.equal(fake.frames("refresh").length, 0);
    await advance(1);
    assert.equal(fake.frames("refresh").length, 1);
    assert.ok(socket.connected);
  });

  test("the margin follows the refreshMargin option", async () => {
    open({ auth: tokenSource(), refreshMargin: 5 * SECOND });
    const fake = await accept(at(900));
    await advance(895 * SECOND - 1);
    assert.equal(fake.frames("refresh").length, 0);
    await advance(1);
    assert.equal(fake.frames("refresh").length, 1);
  });

  test("an exp already past refreshes at once, never with a negative delay", async () => {
    open({ auth: tokenSource() });
    const fake = await accept(at(-5));
    await advance(0);
    assert.equal(fake.frames("refresh").length, 1);
  });

  test("a static auth object with the same token sends nothing", async () => {
    const socket = open({ auth: { token: "tok" } });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err));
    const fake = await accept(at(120));
    await advance(200 * SECOND);
    assert.equal(fake.frames("refresh").length, 0);
    assert.deepEqual(errors, []);
  });

  test("a static auth object given a new token sends it", async () => {
    const socket = open({ auth: { token: "tok" } });
    const fake = await accept(at(120));
    socket.auth = { token: "newer" };
    await advance(80 * SECOND); // 120 s - a third of it
    assert.deepEqual(fake.frames("refresh")[0].data, { token: "newer" });
  });

  test("a refused refresh is retried once, then refresh_error", async () => {
    const auth = tokenSource();
    const socket = open({ auth });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err));
    const fake = await accept(at(900));
    await advance(840 * SECOND);
    const first = fake.frames("refresh")[0];
    fake.push({ ack: first.ack, error: { code: "forbidden", message: "another user" } });
    await flush();
    assert.deepEqual(errors, [], "the first failure is retried");
    // The retry waits half of the 60 s left.
    await advance(30 * SECOND - 1);
    assert.equal(fake.frames("refresh").length, 1);
    await advance(1);
    const second = fake.frames("refresh")[1];
    assert.deepEqual(second.data, { token: "tok-3" });
    fake.push({ ack: second.ack, error: { code: "unauthorized", message: "expired" } });
    await flush();
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof RealtimeError);
    assert.equal(errors[0].code, "unauthorized");
    await advance(60 * SECOND);
    assert.equal(fake.frames("refresh").length, 2, "no third attempt");
    assert.ok(socket.connected, "the socket is left to the server's expiry");
  });

  test("a retry that succeeds goes on as normal", async () => {
    const socket = open({ auth: tokenSource() });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err));
    const fake = await accept(at(900));
    await advance(840 * SECOND);
    fake.push({ ack: fake.frames("refresh")[0].ack, error: { code: "internal" } });
    await advance(30 * SECOND);
    fake.push({ ack: fake.frames("refresh")[1].ack, data: { exp: at(1800) } });
    await flush();
    await advance(870 * SECOND); // 1740 s: the new exp - 60 s
    assert.equal(fake.frames("refresh").length, 3);
    assert.deepEqual(errors, []);
  });

  test("an ack whose exp is not later counts as a failure", async () => {
    const socket = open({ auth: tokenSource() });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err.message));
    const fake = await accept(at(900));
    await advance(840 * SECOND);
    fake.push({ ack: fake.frames("refresh")[0].ack, data: { exp: at(900) } });
    await advance(30 * SECOND);
    const second = fake.frames("refresh")[1];
    assert.deepEqual(second.data, { token: "tok-3" });
    fake.push({ ack: second.ack, data: { exp: at(900) } });
    await flush();
    assert.deepEqual(errors, ["the new token expires no later"]);
  });

  test("no ack within `timeout` counts as a failure", async () => {
    const socket = open({ auth: tokenSource(), timeout: 5 * SECOND });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err.code));
    const fake = await accept(at(900));
    await advance(840 * SECOND); // refresh 1 sent, never answered
    await advance(5 * SECOND); // timed out: retry in (55 s left) / 2
    await advance(27.5 * SECOND); // refresh 2
    assert.equal(fake.frames("refresh").length, 2);
    await advance(5 * SECOND);
    assert.deepEqual(errors, ["timeout"]);
  });

  test("an auth function with nothing newer: once more, then refresh_error", async () => {
    const socket = open({ auth: () => ({ token: "same" }) });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err.message));
    const fake = await accept(at(900));
    await advance(840 * SECOND);
    assert.deepEqual(errors, []);
    await advance(30 * SECOND);
    assert.deepEqual(errors, ["auth gave no newer token"]);
    assert.equal(fake.frames("refresh").length, 0, "the same token is not sent");
  });

  test("an auth function that throws is a failure too", async () => {
    let calls = 0;
    const socket = open({
      auth: () => {
        if (++calls > 1) throw new Error("no session");
        return { token: "tok-1" };
      },
    });
    const errors = [];
    socket.on("refresh_error", (err) => errors.push(err.code));
    await accept(at(900));
    await advance(840 * SECOND);
    await advance(30 * SECOND);
    assert.deepEqual(errors, ["unauthorized"]);
    assert.equal(calls, 3);
  });

  test("disconnect() cancels the refresh", async () => {
    const auth = tokenSource();
    const socket = open({ auth });
    const fake = await accept(at(900));
    socket.disconnect();
    await advance(1000 * SECOND);
    assert.equal(auth.calls, 1, "auth is not asked for a refresh");
    assert.equal(fake.frames("refresh").length, 0);
  });

  test("a lost connection cancels the old refresh; the new one has its own", async () => {
    const auth = tokenSource();
    const socket = open({ auth });
    const first = await accept(at(900));
    first.drop(1006);
    await advance(10); // the reconnect backoff
    const second = await accept(at(600), "sid-2");
    assert.equal(second.frames("connect")[0].data.token, "tok-2");
    await advance(540 * SECOND);
    assert.equal(first.frames("refresh").length, 0);
    const [refresh] = second.frames("refresh");
    assert.deepEqual(refresh.data, { token: "tok-3" });
    second.push({ ack: refresh.ack, data: { exp: at(1800) } });
    await advance(400 * SECOND); // past the first connection's refresh moment
    assert.equal(auth.calls, 3);
    assert.equal(socket.id, "sid-2");
  });

  test("a server without exp in its ack gets no refresh", async () => {
    const auth = tokenSource();
    open({ auth });
    const fake = await accept(undefined);
    await advance(7 * 24 * 3600 * SECOND);
    assert.equal(fake.frames("refresh").length, 0);
    assert.equal(auth.calls, 1);
  });

  test("refresh_error cannot be emitted", () => {
    const socket = open({ auth: { token: "tok" }, autoConnect: false });
    assert.throws(() => socket.emit("refresh_error"), /reserved/);
  });
});

describe("token expired", () => {
  test("the server's close at exp reconnects with a fresh token from auth", async () => {
    const auth = tokenSource();
    const socket = open({ auth });
    const reasons = [];
    socket.on("disconnect", (reason, details) => reasons.push([reason, details]));
    const fake = await accept(at(900));
    socket.emit("later", { x: 1 }); // sent now; what is emitted offline is kept
    fake.push({ event: "disconnect", data: { reason: "token expired" } });
    fake.drop(4401);
    socket.emit("buffered", { y: 2 });
    const details = { code: 4401, reason: "token expired" };
    assert.deepEqual(reasons, [["transport close", details]]);
    assert.ok(socket.active, "it reconnects by itself");
    await advance(10);
    const again = await accept(at(1800), "sid-2");
    assert.equal(again.frames("connect")[0].data.token, "tok-2");
    assert.deepEqual(again.frames("buffered")[0].data, { y: 2 });
    assert.equal(socket.id, "sid-2");
  });

  test("with a static token the reconnect is refused and stops", async () => {
    const socket = open({ auth: { token: "tok" } });
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err.code));
    const fake = await accept(at(60));
    fake.push({ event: "disconnect", data: { reason: "token expired" } });
    fake.drop(4401);
    await advance(10);
    await flush();
    const again = FakeSocket.last;
    assert.notEqual(again, fake);
    again.open();
    again.push({ ack: 0, error: { code: "unauthorized", message: "expired" } });
    again.drop(4401);
    await advance(1000);
    assert.deepEqual(errors, ["unauthorized"]);
    assert.equal(socket.active, false);
    assert.equal(FakeSocket.all.length, 2);
  });

  test("other forced disconnects still do not reconnect", async () => {
    const socket = open({ auth: tokenSource() });
    const reasons = [];
    socket.on("disconnect", (reason) => reasons.push(reason));
    const fake = await accept(at(900));
    fake.push({ event: "disconnect", data: { reason: "password changed" } });
    fake.drop(4401);
    await advance(1000);
    assert.deepEqual(reasons, ["io server disconnect"]);
    assert.equal(FakeSocket.all.length, 1);
  });
});
