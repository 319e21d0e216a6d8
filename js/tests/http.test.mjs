// The HTTP fallback (docs/adapter.md "Transports", docs/protocol.md "HTTP fallback"):
// the transport over a scripted fetch(), and the adapter's choice between it and
// the WebSocket (FakeSocket).
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { HttpTransport, streamUrl } from "../../realtime/static/realtime/http-transport.js";
import { connect } from "../../realtime/static/realtime/realtime.js";
import { FakeServer } from "./fake-fetch.mjs";
import { FakeSocket, until } from "./fake-socket.mjs";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let server;
let sockets = [];
function open(options = {}) {
  const socket = connect("http://example.test", {
    auth: { token: "tok" },
    WebSocket: FakeSocket,
    fetch: server.fetch,
    transports: ["http"],
    reconnectionDelay: 5,
    reconnectionDelayMax: 20,
    ...options,
  });
  sockets.push(socket);
  return socket;
}

// The connect ack's start position in the user's room: a reconnect presents it.
const POSITIONS = { positions: { "user:1": { epoch: "e1", offset: 3 } } };

async function connectedOverHttp(options = {}, sid = "sid-1", session = {}) {
  const socket = open(options);
  const stream = await server.accept(server.streams.length + 1, sid, session, POSITIONS);
  await until(() => socket.connected, "connected");
  return [socket, stream];
}

beforeEach(() => {
  server = new FakeServer();
  FakeSocket.all = [];
  sockets = [];
});
afterEach(() => {
  for (const socket of sockets) socket.disconnect();
});

describe("stream URL", () => {
  test("is <path>http/ over http(s); the socket.io path's is /ws/http/", () => {
    assert.equal(streamUrl("ws://h:8000/ws/"), "http://h:8000/ws/http/");
    assert.equal(streamUrl("wss://h/ws/socket.io/"), "https://h/ws/http/");
    assert.equal(streamUrl("wss://h/custom"), "https://h/custom/http/");
    const socket = open({ path: "/ws/socket.io", autoConnect: false });
    assert.equal(socket.streamUrl, "http://example.test/ws/http/");
  });
});

describe("HTTP transport", () => {
  test("the connect frame opens the stream; frames both ways; keep-alives ignored", async () => {
    const socket = open();
    const stream = await server.nextStream(1);
    assert.equal(stream.method, "POST");
    assert.equal(stream.url, "http://example.test/ws/http/");
    assert.equal(stream.header("Content-Type"), "application/x-ndjson");
    assert.deepEqual(stream.frames, [{ event: "connect", data: { token: "tok" }, ack: 0 }]);
    assert.equal(FakeSocket.all.length, 0, "no WebSocket with transports ['http']");
    stream.openStream({ sid: "s1", key: "k1" });
    stream.push({ ack: 0, data: { sid: "s1", user: { id: 1, name: "Alice", role: "user" } } });
    await until(() => socket.connected, "connected");
    assert.equal(socket.id, "s1");
    assert.equal(socket.io.engine.transport.name, "http");

    const got = [];
    socket.on("events", (data) => got.push(data));
    stream.write(":\n\n");
    // One frame cut in three chunks, then two frames in one chunk.
    const text = `data: ${JSON.stringify({ event: "events", data: { n: 1 } })}\n\n`;
    stream.write(text.slice(0, 5));
    stream.write(text.slice(5, 20));
    stream.write(text.slice(20));
    stream.write(
      `data: {"event":"events","data":{"n":2}}\r\n\r\n:\n\ndata: {"event":"events","data":{"n":3}}\n\n`,
    );
    await until(() => got.length === 3, "three events");
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }, { n: 3 }]);

    const reply = socket.emitWithAck("user-list", { a: "é" });
    const post = await server.nextPost(1);
    assert.equal(post.url, "http://example.test/ws/http/s1/");
    assert.equal(post.header("X-Realtime-Key"), "k1");
    assert.equal(post.header("X-Realtime-Seq"), "1");
    assert.equal(post.header("Content-Type"), "application/x-ndjson");
    assert.deepEqual(post.frames, [{ event: "user-list", data: { a: "é" }, ack: 1 }]);
    post.respond(204);
    stream.push({ ack: 1, data: { user_ids: [1] } });
    assert.deepEqual(await reply, { user_ids: [1] });
  });

  test("one POST at a time: frames queued meanwhile go in the next, in order", async () => {
    const [socket] = await connectedOverHttp();
    socket.emit("a", 1);
    const first = await server.nextPost(1);
    socket.emit("b", 2);
    socket.emit("c", 3);
    socket.emit("d", 4);
    await pause(20);
    assert.equal(server.posts.length, 1, "nothing sent while a POST is out");
    first.respond(204);
    const second = await server.nextPost(2);
    assert.equal(second.header("X-Realtime-Seq"), "2");
    assert.deepEqual(
      second.frames.map((f) => f.event),
      ["b", "c", "d"],
    );
  });

  test("batches respect post_max_frames and post_max_bytes from the open event", async () => {
    const limits = { post_max_frames: 2, post_max_bytes: 80 };
    const [socket] = await connectedOverHttp({}, "sid-1", limits);
    socket.emit("first");
    const first = await server.nextPost(1);
    for (const event of ["b", "c", "d"]) socket.emit(event);
    socket.emit("e", "x".repeat(40)); // fits alone, not with another
    first.respond(204);
    const second = await server.nextPost(2);
    assert.deepEqual(
      second.frames.map((f) => f.event),
      ["b", "c"],
    );
    second.respond(204);
    const third = await server.nextPost(3);
    assert.deepEqual(
      third.frames.map((f) => f.event),
      ["d"],
    );
    assert.ok(new TextEncoder().encode(third.body).length <= 80);
    third.respond(204);
    const fourth = await server.nextPost(4);
    assert.deepEqual(
      fourth.frames.map((f) => f.event),
      ["e"],
    );
    assert.deepEqual(
      [second, third, fourth].map((p) => p.header("X-Realtime-Seq")),
      ["2", "3", "4"],
    );
  });

  test("a POST lost (network, 5xx, 429) is sent again with the same seq and body", async () => {
    const [socket] = await connectedOverHttp();
    socket.emit("a", 1);
    const first = await server.nextPost(1);
    socket.emit("b", 2); // queued meanwhile: not added to the retried POST
    first.fail();
    const second = await server.nextPost(2);
    second.respond(503, { error: { code: "internal", message: "restarting" } });
    const third = await server.nextPost(3);
    third.respond(429, { error: { code: "rate_limited", message: "queue full" } });
    const fourth = await server.nextPost(4);
    for (const post of [second, third, fourth]) {
      assert.equal(post.header("X-Realtime-Seq"), "1");
      assert.equal(post.body, first.body);
    }
    fourth.respond(204);
    const fifth = await server.nextPost(5);
    assert.equal(fifth.header("X-Realtime-Seq"), "2");
    assert.deepEqual(fifth.frames, [{ event: "b", data: 2 }]);
  });

  test("a refused POST (413) fails its acks with the server's code; the seq is reused", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    const [socket, stream] = await connectedOverHttp();
    const refused = socket.emitWithAck("big", "x");
    const post = await server.nextPost(1);
    post.respond(413, { error: { code: "bad_request", message: "body too large" } });
    await assert.rejects(refused, (err) => err.code === "bad_request");
    assert.match(warnings.join("\n"), /refused 1 frame\(s\): 413 bad_request: body too large/);
    socket.emit("next");
    const next = await server.nextPost(2);
    assert.equal(next.header("X-Realtime-Seq"), "1", "nothing was taken");
    assert.equal(socket.connected, true, "the session stays");
    assert.equal(stream.aborted, false);
  });

  test("a frame over post_max_bytes is refused without a POST", async (t) => {
    t.mock.method(console, "warn", () => {});
    const [socket] = await connectedOverHttp({}, "sid-1", { post_max_bytes: 100 });
    const refused = socket.emitWithAck("big", "x".repeat(200));
    await assert.rejects(refused, (err) => err.code === "bad_request" && /over post_max_bytes/.test(err.message));
    socket.emit("small");
    const post = await server.nextPost(1);
    assert.deepEqual(
      post.frames.map((f) => f.event),
      ["small"],
    );
    assert.equal(post.header("X-Realtime-Seq"), "1");
  });

  test("404: the session is gone; the stream is aborted and the socket reconnects", async () => {
    const [socket, stream] = await connectedOverHttp();
    const reasons = [];
    socket.on("disconnect", (reason, details) => reasons.push([reason, details?.code]));
    socket.emit("a");
    const post = await server.nextPost(1);
    post.respond(404, { error: { code: "not_found", message: "no such session" } });
    await until(() => reasons.length, "disconnect");
    assert.deepEqual(reasons, [["transport close", 1006]]);
    assert.equal(stream.aborted, true);
    const again = await server.nextStream(2);
    assert.deepEqual(again.frames[0].data.recover, {
      sid: "sid-1",
      rooms: { "user:1": { epoch: "e1", offset: 3 } },
    });
  });

  test("409 and 403 drop the session too, with a warning", async (t) => {
    const warnings = [];
    t.mock.method(console, "warn", (message) => warnings.push(message));
    for (const [index, status] of [409, 403].entries()) {
      const [socket, stream] = await connectedOverHttp({}, `sid-${index}`);
      socket.emit("a");
      const post = await server.nextPost(index + 1);
      post.respond(status, { error: { code: "bad_request", message: "no" } });
      await until(() => stream.aborted, `stream aborted after ${status}`);
      assert.equal(socket.connected, false);
      socket.disconnect();
    }
    assert.equal(warnings.length, 2, warnings.join("\n"));
  });

  test("the close event's code acts as a WebSocket close code", async () => {
    // 4401 after the server's disconnect event: a server disconnect, no reconnect.
    const [socket, stream] = await connectedOverHttp();
    const reasons = [];
    socket.on("disconnect", (reason, details) => reasons.push([reason, details]));
    stream.push({ event: "disconnect", data: { reason: "password changed" } });
    stream.close(4401);
    await until(() => reasons.length, "disconnect");
    assert.deepEqual(reasons, [
      ["io server disconnect", { code: 4401, reason: "password changed" }],
    ]);
    await pause(40);
    assert.equal(server.streams.length, 1, "no reconnect after a server disconnect");

    // 1012 (restart): a transport close, and a reconnect.
    const [other, restarted] = await connectedOverHttp();
    const lost = [];
    other.on("disconnect", (reason, details) => lost.push([reason, details?.code]));
    restarted.close(1012);
    await until(() => lost.length, "disconnect");
    assert.deepEqual(lost, [["transport close", 1012]]);
    await server.nextStream(3);
  });

  test("a stream that ends without its close event is a 1006 and reconnects", async () => {
    const [socket, stream] = await connectedOverHttp();
    const lost = [];
    socket.on("disconnect", (reason, details) => lost.push([reason, details?.code]));
    stream.end();
    await until(() => lost.length, "disconnect");
    assert.deepEqual(lost, [["transport close", 1006]]);
    await server.accept(2, "sid-2");
    await until(() => socket.connected, "reconnected");
    assert.equal(socket.id, "sid-2");
  });

  test("a refused stream (HTTP 403) is a connect_error and is retried", async () => {
    const socket = open();
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    const stream = await server.nextStream(1);
    stream.respond(403, { error: { code: "forbidden", message: "origin" } });
    await until(() => errors.length, "connect_error");
    assert.equal(errors[0].code, "transport");
    assert.match(errors[0].message, /http closed \(1006\): stream refused: HTTP 403 forbidden/);
    await server.nextStream(2);
  });

  test("disconnect() aborts the stream and the POST in flight", async () => {
    const [socket, stream] = await connectedOverHttp();
    socket.emit("a");
    const post = await server.nextPost(1);
    socket.disconnect();
    assert.equal(stream.aborted, true);
    assert.equal(post.aborted, true);
    await pause(30);
    assert.equal(server.streams.length, 1, "no reconnect");
  });
});

describe("HTTP transport liveness", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
  afterEach(() => mock.timers.reset());

  // The transport's steps are promises (fetch, reads): let them run without moving
  // the mocked clock.
  async function flush() {
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  }

  test("a stream silent for 2 x keepalive + 5 s is aborted; a keep-alive defers it", async () => {
    const transport = new HttpTransport("http://example.test/ws/http/", {
      fetch: server.fetch,
    });
    const closes = [];
    transport.onclose = (event) => closes.push(event.code);
    await flush();
    const stream = server.streams[0];
    stream.openStream({ keepalive: 10 }); // dead after 25 s of nothing
    await flush();
    mock.timers.tick(24_000);
    stream.write(":\n\n");
    await flush();
    mock.timers.tick(24_000);
    await flush();
    assert.deepEqual(closes, [], "alive: a keep-alive came 24 s ago");
    mock.timers.tick(1_000);
    await flush();
    assert.deepEqual(closes, [1006]);
    assert.equal(stream.aborted, true);
  });

  test("a stream whose response never comes is aborted after 35 s", async () => {
    const transport = new HttpTransport("http://example.test/ws/http/", {
      fetch: server.fetch,
    });
    const closes = [];
    transport.onclose = (event) => closes.push(event.code);
    await flush();
    mock.timers.tick(34_999);
    await flush();
    assert.deepEqual(closes, []);
    mock.timers.tick(1);
    await flush();
    assert.deepEqual(closes, [1006]);
    assert.equal(server.streams[0].aborted, true);
  });
});

describe("fallback from WebSocket to HTTP", () => {
  function openBoth(options = {}) {
    const socket = open({ transports: ["websocket", "http"], fallbackTimeout: 40, ...options });
    const chosen = [];
    socket.on("transport", (name, reason) => chosen.push([name, reason]));
    return [socket, chosen];
  }

  test("a WebSocket closed before any frame falls back at once, without connect_error", async () => {
    const [socket, chosen] = openBoth();
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    await until(() => FakeSocket.last, "a WebSocket");
    FakeSocket.last.drop(1006); // a proxy refusing the upgrade
    await server.accept(1);
    await until(() => socket.connected, "connected over HTTP");
    assert.equal(socket.io.engine.transport.name, "http");
    assert.deepEqual(errors, []);
    assert.deepEqual(chosen, [
      ["websocket", undefined],
      ["http", "websocket closed (1006) before any frame"],
    ]);
  });

  test("a WebSocket that opens but brings no frame is given up after fallbackTimeout", async () => {
    const [socket, chosen] = openBoth();
    await until(() => FakeSocket.last, "a WebSocket");
    const ws = FakeSocket.last;
    ws.open();
    assert.equal(ws.frames("connect").length, 1);
    await server.accept(1);
    await until(() => socket.connected, "connected over HTTP");
    assert.equal(ws.closed, true, "the silent WebSocket is closed");
    assert.equal(chosen[1][1], "no frame from websocket in 40 ms");
    ws.push({ event: "late", data: null }); // a late frame on it reaches no one
  });

  test("a handshake that never completes is given up after fallbackTimeout", async () => {
    const [socket] = openBoth();
    await until(() => FakeSocket.last, "a WebSocket");
    await server.accept(1);
    await until(() => socket.connected, "connected over HTTP");
    assert.equal(FakeSocket.last.closed, true);
  });

  test("after a frame there is no fallback: a refused token stops", async () => {
    const [socket] = openBoth();
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    await until(() => FakeSocket.last, "a WebSocket");
    FakeSocket.last.open();
    FakeSocket.last.push({ ack: 0, error: { code: "unauthorized", message: "bad token" } });
    FakeSocket.last.drop(4401);
    await until(() => errors.length, "connect_error");
    assert.equal(errors[0].code, "unauthorized");
    await pause(60);
    assert.equal(server.requests.length, 0, "no HTTP attempt");
  });

  test("every reconnect tries the WebSocket first again", async () => {
    const [socket] = openBoth();
    await until(() => FakeSocket.all.length === 1, "a WebSocket");
    FakeSocket.last.drop(1006);
    const stream = await server.accept(1, "sid-1", {}, POSITIONS);
    await until(() => socket.connected, "connected over HTTP");
    stream.close(1012);
    await until(() => FakeSocket.all.length === 2, "a WebSocket on the reconnect");
    await FakeSocket.last.accept("sid-ws");
    await until(() => socket.connected, "connected over WebSocket");
    assert.equal(socket.io.engine.transport.name, "websocket");
    assert.equal(socket.id, "sid-ws");
    assert.equal(server.streams.length, 1, "no second stream");
    assert.deepEqual(FakeSocket.last.frames("connect")[0].data.recover.sid, "sid-1");
  });

  test("both failing is one connect_error, then the next attempt starts on WebSocket", async () => {
    const [socket] = openBoth();
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    await until(() => FakeSocket.all.length === 1, "a WebSocket");
    FakeSocket.last.drop(1006);
    (await server.nextStream(1)).fail();
    await until(() => errors.length, "connect_error");
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /^http closed \(1006\)/);
    await until(() => FakeSocket.all.length === 2, "the next attempt's WebSocket");
  });

  test("transports ['websocket'] never falls back; 'polling' is the HTTP transport", async () => {
    const socket = open({ transports: ["websocket"], fallbackTimeout: 10 });
    const errors = [];
    socket.on("connect_error", (err) => errors.push(err));
    await until(() => FakeSocket.last, "a WebSocket");
    FakeSocket.last.open();
    await pause(40); // silence past fallbackTimeout: only the connect timeout applies
    FakeSocket.last.drop(1006);
    await until(() => errors.length, "connect_error");
    assert.equal(server.requests.length, 0);

    const polling = open({ transports: ["polling"] });
    await server.accept(1);
    await until(() => polling.connected, "connected over HTTP");
    assert.equal(polling.io.engine.transport.name, "http");
  });

  test("the WebSocket is tried first whatever the order given", async () => {
    open({ transports: ["http", "websocket"] });
    await until(() => FakeSocket.all.length === 1, "a WebSocket");
    assert.equal(server.requests.length, 0);
  });
});
