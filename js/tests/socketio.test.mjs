// socket.io-compatible mode of the adapter: Open WebUI's exact io() options and calls
// (src/routes/+layout.svelte, lib/encryption/client.ts) against a scripted server.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { io, socketUrl } from "../../realtime/static/realtime/realtime.js";
import { FakeSocket, until } from "./fake-socket.mjs";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Open WebUI's options, with the delays shortened so the tests run fast.
function openWebuiOptions(storage, transports = ["websocket"]) {
  return {
    reconnection: true,
    reconnectionDelay: 5,
    reconnectionDelayMax: 20,
    randomizationFactor: 0.5,
    path: "/ws/socket.io",
    transports,
    auth: (cb) => cb({ token: storage.token }),
    WebSocket: FakeSocket,
  };
}

let sockets = [];
function open(options = {}, storage = { token: "tok" }) {
  const socket = io("http://owui.test", { ...openWebuiOptions(storage), ...options });
  sockets.push(socket);
  return socket;
}

async function connected(options, sid = "sid-1") {
  const socket = open(options);
  await until(() => FakeSocket.last, "a socket");
  await FakeSocket.last.accept(sid);
  await until(() => socket.connected, "connected");
  return [socket, FakeSocket.last];
}

beforeEach(() => {
  FakeSocket.all = [];
  sockets = [];
});
afterEach(() => {
  for (const socket of sockets) socket.disconnect();
});

describe("Open WebUI's io() options", () => {
  test("connect to path, as openwebui; socket.id is the server's sid", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    const [socket, ws] = await connected({}, "server-sid");
    assert.equal(ws.url, "ws://owui.test/ws/socket.io/");
    assert.deepEqual(ws.sent[0], {
      event: "connect",
      data: { token: "tok", protocol: "openwebui" },
      ack: 0,
    });
    assert.equal(socket.id, "server-sid");
    assert.equal(socket.socketio, true);
    assert.deepEqual(warnings, [], "no warning for transports ['websocket']");
  });

  test("the protocol option picks the realtime dialect", async () => {
    const [, ws] = await connected({ protocol: "realtime" });
    assert.equal(ws.sent[0].data.protocol, "realtime");
  });

  test("an explicit path replaces the URL's, as socket.io-client's does", () => {
    assert.equal(
      socketUrl("https://h/app/", "/ws/socket.io", undefined, true),
      "wss://h/ws/socket.io/",
    );
    assert.equal(socketUrl("", "/ws/socket.io/", "http://p.test/c/", true), "ws://p.test/ws/socket.io/");
  });

  test("['polling', 'websocket'] tries WebSocket first, without a warning", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    const fetch = () => assert.fail("no HTTP while the WebSocket works");
    const [socket, ws] = await connected({ transports: ["polling", "websocket"], fetch });
    assert.equal(socket.connected, true);
    assert.equal(ws.url, "ws://owui.test/ws/socket.io/");
    assert.equal(socket.io.engine.transport.name, "websocket");
    assert.equal(socket.streamUrl, "http://owui.test/ws/http/", "the fallback's stream");
    assert.deepEqual(warnings, []);
  });

  test("an unknown transport is an error", () => {
    assert.throws(() => open({ transports: ["webtransport"] }), /unknown transport 'webtransport'/);
    assert.throws(() => open({ transports: [] }), /non-empty array/);
  });

  test("the auth callback is called again on each reconnect", async () => {
    const storage = { token: "first" };
    const socket = open({}, storage);
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    storage.token = "second"; // the page refreshed its token in localStorage
    FakeSocket.last.drop(1006);
    await until(() => FakeSocket.all.length === 2, "reconnect");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected again");
    assert.deepEqual(
      FakeSocket.all.map((ws) => ws.sent[0].data.token),
      ["first", "second"],
    );
  });
});

describe("socket.io acks", () => {
  test("emit(ev, data, cb) calls cb(value): no error argument", async () => {
    const [socket, ws] = await connected();
    const args = [];
    socket.emit("events:chat", { chat_id: "c", data: { type: "join" } }, (...a) => args.push(a));
    const frame = ws.frames("events:chat")[0];
    ws.push({ ack: frame.ack, data: true });
    assert.deepEqual(args, [[true]]);
  });

  test("an error ack gives the callback null, with a warning", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    const [socket, ws] = await connected();
    const args = [];
    socket.emit("ydoc:document:update", { document_id: "note:x" }, (...a) => args.push(a));
    const frame = ws.frames("ydoc:document:update")[0];
    ws.push({ ack: frame.ack, error: { code: "forbidden", message: "read only" } });
    assert.deepEqual(args, [[null]]);
    assert.match(warnings[0], /'ydoc:document:update' failed: forbidden: read only/);
  });

  test("outside socket.io-compatible mode an error ack is a RealtimeError", async () => {
    const [socket, ws] = await connected({ path: "/ws/" });
    assert.equal(socket.socketio, false);
    assert.deepEqual(ws.sent[0].data, { token: "tok" }, "no protocol field");
    const got = new Promise((resolve) => socket.emit("x", {}, resolve));
    ws.push({ ack: ws.frames("x")[0].ack, error: { code: "bad_request", message: "no" } });
    assert.equal((await got).code, "bad_request");
  });

  test("timeout(ms).volatile.emit gets (null, result) when connected", async () => {
    const [socket, ws] = await connected();
    const got = new Promise((resolve) =>
      socket.timeout(1000).volatile.emit("encryption:ping", { channel: "c" }, (err, result) =>
        resolve([err, result]),
      ),
    );
    ws.push({ ack: ws.frames("encryption:ping")[0].ack, data: { ok: true } });
    assert.deepEqual(await got, [null, { ok: true }]);
  });

  test("timeout(ms).emit gets a timeout error when no ack comes", async () => {
    const [socket] = await connected();
    const [err, result] = await new Promise((resolve) =>
      socket.timeout(20).volatile.emit("encryption:status", {}, (...a) => resolve(a)),
    );
    assert.equal(err.code, "timeout");
    assert.equal(result, undefined);
  });

  test("volatile drops an emit while disconnected; a plain emit is buffered", async () => {
    const socket = open({ autoConnect: false });
    const timedOut = new Promise((resolve) =>
      socket.timeout(20).volatile.emit("encryption:join", { channel: "c" }, resolve),
    );
    socket.volatile.timeout(20).emit("encryption:leave", { channel: "c" });
    socket.emit("heartbeat", {});
    assert.equal((await timedOut).code, "timeout");
    socket.connect();
    await until(() => FakeSocket.last, "a socket");
    await FakeSocket.last.accept();
    await until(() => socket.connected, "connected");
    await until(() => FakeSocket.last.frames("heartbeat").length === 1, "the buffered emit");
    assert.deepEqual(
      FakeSocket.last.sent.map((f) => f.event),
      ["connect", "heartbeat"],
      "the volatile emits were never sent",
    );
  });
});

describe("'io server disconnect'", () => {
  test("the server's disconnect: no reconnect by itself; connect() reconnects", async () => {
    const [socket, ws] = await connected();
    const reasons = [];
    socket.on("disconnect", (reason) => {
      reasons.push(reason);
      // What Open WebUI's layout does on this reason.
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 30);
    });
    ws.push({ event: "disconnect", data: { reason: "disconnected by an admin" } });
    ws.drop(4401);
    assert.deepEqual(reasons, ["io server disconnect"]);
    assert.equal(socket.active, false);
    await pause(25); // past reconnectionDelayMax: the adapter itself did not reconnect
    assert.equal(FakeSocket.all.length, 1);
    await until(() => FakeSocket.all.length === 2, "the page's connect()");
    await FakeSocket.last.accept("sid-2");
    await until(() => socket.connected, "connected again");
    assert.equal(socket.id, "sid-2");
  });

  test("a disconnect event before another close code is a server disconnect too", async () => {
    const [socket, ws] = await connected();
    const reasons = [];
    socket.on("disconnect", (reason, details) => reasons.push([reason, details]));
    ws.push({ event: "disconnect", data: { reason: "maintenance" } });
    ws.drop(4000);
    assert.deepEqual(reasons, [["io server disconnect", { code: 4000, reason: "maintenance" }]]);
    await pause(50);
    assert.equal(FakeSocket.all.length, 1);
  });

  test("a restart (1012) is a transport close and reconnects", async () => {
    const [socket, ws] = await connected();
    const reasons = [];
    socket.on("disconnect", (reason) => reasons.push(reason));
    ws.drop(1012);
    assert.deepEqual(reasons, ["transport close"]);
    await until(() => FakeSocket.all.length === 2, "reconnect");
  });
});

test("a disconnect listener's connect() starts the only attempt", async () => {
  const [socket, ws] = await connected();
  socket.on("disconnect", () => socket.connect());
  ws.push({ event: "disconnect", data: { reason: "password changed" } });
  ws.drop(4401);
  await until(() => FakeSocket.all.length === 2, "the listener's attempt");
  FakeSocket.last.drop(1006); // refused before the connect ack: the retry backs off
  await pause(60);
  // One attempt from connect(), then retries of that one only, never a second chain.
  const attempts = FakeSocket.all.length;
  assert.ok(attempts >= 3 && attempts <= 6, `attempts ${attempts}`);
});

test("an unknown protocol is an error; a refused connect frame is not retried", async () => {
  assert.throws(() => open({ protocol: "socketio" }), /unknown protocol 'socketio'/);
  const socket = open();
  const errors = [];
  socket.on("connect_error", (err) => errors.push(err.code));
  await until(() => FakeSocket.last, "a socket");
  FakeSocket.last.open();
  FakeSocket.last.push({ ack: 0, error: { code: "bad_request", message: "no" } });
  FakeSocket.last.drop(4401);
  await pause(60);
  assert.deepEqual(errors, ["bad_request"]);
  assert.equal(FakeSocket.all.length, 1);
});
