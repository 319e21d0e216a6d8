// Unit tests of the adapter's resumable delivery (issue 16, docs/adapter.md
// "Recovery"): positions, duplicates, `recover` on a reconnect, socket.recovered,
// recovery_failed and socket.history, against a scripted WebSocket.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { connect } from "../../realtime/static/realtime/realtime.js";
import { adapterSockets, FakeSocket, until } from "./fake-socket.mjs";

const open = adapterSockets(connect);

const USER = { id: 1, name: "Alice", role: "user" };

/** Open the next attempt's socket and answer its connect frame with `ack`. */
async function acceptWith(socket, count, ack) {
  await until(() => FakeSocket.all.length === count, `attempt ${count}`);
  const ws = FakeSocket.last;
  ws.open();
  await until(() => ws.frames("connect").length, "the connect frame");
  ws.push({ ack: 0, data: { user: USER, ...ack } });
  await until(() => socket.connected, "connected");
  return ws;
}

function event(room, epoch, offset, n) {
  return { event: "events", data: { n }, room, epoch, offset };
}

/** A socket connected once as sid-1 that saw `frames`; returns [socket, ws]. */
async function seen(frames, options) {
  const socket = open(options);
  const ws = await acceptWith(socket, 1, { sid: "sid-1" });
  for (const frame of frames) ws.push(frame);
  return [socket, ws];
}

describe("positions", () => {
  test("are kept per room; listeners get data only, lastPosition while they run", async () => {
    const socket = open();
    const got = [];
    socket.on("events", (data) => got.push([data, socket.lastPosition]));
    const ws = await acceptWith(socket, 1, { sid: "s" });
    ws.push(event("user:1", "e1", 4, "a"));
    ws.push(event("channel:5", "c1", 9, "b"));
    ws.push({ event: "events", data: { n: "volatile" } });
    assert.deepEqual(got, [
      [{ n: "a" }, { room: "user:1", epoch: "e1", offset: 4 }],
      [{ n: "b" }, { room: "channel:5", epoch: "c1", offset: 9 }],
      [{ n: "volatile" }, null],
    ]);
    assert.equal(socket.lastPosition, null, "only while listeners run");
    assert.deepEqual(socket.positions, {
      "user:1": { epoch: "e1", offset: 4 },
      "channel:5": { epoch: "c1", offset: 9 },
    });
  });

  test("a frame at or before the known offset of the same epoch is dropped", async () => {
    const [socket, ws] = await seen([]);
    const got = [];
    socket.on("events", (data) => got.push(data.n));
    for (const offset of [1, 2, 2, 1, 5, 3, 6]) ws.push(event("user:1", "e", offset, offset));
    assert.deepEqual(got, [1, 2, 5, 6]);
    assert.deepEqual(socket.positions, { "user:1": { epoch: "e", offset: 6 } });
  });

  test("positions is a copy: changing it changes nothing", async () => {
    const [socket] = await seen([event("user:1", "e", 3, 0)]);
    const copy = socket.positions;
    copy["user:1"].offset = 99;
    delete copy["user:1"];
    assert.deepEqual(socket.positions, { "user:1": { epoch: "e", offset: 3 } });
  });

  test("a malformed position is delivered but not kept", async (t) => {
    t.mock.method(console, "warn", () => {});
    const [socket, ws] = await seen([]);
    const got = [];
    socket.on("events", (data) => got.push(data.n));
    ws.push(event("user:1", "e", -1, "negative"));
    ws.push(event("user:1", "x".repeat(65), 1, "long epoch"));
    ws.push(event("r".repeat(201), "e", 1, "long room"));
    ws.push(event("user:1", "e", 1.5, "fraction"));
    assert.equal(got.length, 4);
    assert.deepEqual(socket.positions, {});
  });
});

describe("recover on reconnect", () => {
  test("the first connect presents nothing; a reconnect presents sid and rooms", async () => {
    const [socket, first] = await seen([
      event("user:1", "e1", 4, 0),
      event("channel:5", "c1", 9, 0),
    ]);
    assert.equal(first.frames("connect")[0].data.recover, undefined);
    assert.equal(socket.recovered, false);
    first.drop(1012);
    const second = await acceptWith(socket, 2, { sid: "sid-2", recovered: true, recovery: {} });
    assert.deepEqual(second.frames("connect")[0].data, {
      token: "tok",
      recover: {
        sid: "sid-1",
        rooms: { "user:1": { epoch: "e1", offset: 4 }, "channel:5": { epoch: "c1", offset: 9 } },
      },
    });
    assert.equal(socket.recovered, true);
    second.drop(1012);
    const third = await acceptWith(socket, 3, { sid: "sid-3" });
    assert.equal(third.frames("connect")[0].data.recover.sid, "sid-2", "the last sid");
    assert.equal(socket.recovered, false, "no `recovered` in the ack");
  });

  test("no recover when no room has a position", async () => {
    const [socket, first] = await seen([{ event: "events", data: {} }]);
    first.drop(1012);
    const second = await acceptWith(socket, 2, { sid: "sid-2", recovered: false });
    assert.equal("recover" in second.frames("connect")[0].data, false);
    assert.equal(socket.recovered, false);
  });

  test("at most the 100 most recently updated rooms are presented", async () => {
    const frames = [];
    for (let i = 0; i < 120; i++) frames.push(event(`channel:${i}`, "e", 1, i));
    frames.push(event("channel:3", "e", 2, "update"));
    const [socket, first] = await seen(frames);
    first.drop(1012);
    const second = await acceptWith(socket, 2, { sid: "sid-2" });
    const rooms = second.frames("connect")[0].data.recover.rooms;
    assert.equal(Object.keys(rooms).length, 100);
    assert.deepEqual(rooms["channel:3"], { epoch: "e", offset: 2 });
    assert.ok("channel:119" in rooms);
    assert.ok("channel:21" in rooms);
    assert.equal("channel:20" in rooms, false, "the least recently updated is left out");
  });

  test("replayed events after the ack update positions; duplicates are dropped", async () => {
    const [socket, first] = await seen([event("user:1", "e", 4, 4)]);
    const got = [];
    socket.on("events", (data) => got.push(data.n));
    first.drop(1012);
    const second = await acceptWith(socket, 2, {
      sid: "sid-2",
      recovered: true,
      recovery: { "user:1": { recovered: true, epoch: "e", offset: 6, replayed: 2 } },
    });
    for (const offset of [4, 5, 6, 6]) second.push(event("user:1", "e", offset, offset));
    assert.deepEqual(got, [5, 6]);
    assert.deepEqual(socket.positions, { "user:1": { epoch: "e", offset: 6 } });
  });
});

describe("start positions", () => {
  test("the ack's positions start rooms not known yet; known ones keep theirs", async () => {
    const socket = open();
    const first = await acceptWith(socket, 1, {
      sid: "sid-1",
      positions: { "user:1": { epoch: "e", offset: 7 }, "channel:5": { epoch: "c", offset: 0 } },
    });
    assert.deepEqual(socket.positions, {
      "user:1": { epoch: "e", offset: 7 },
      "channel:5": { epoch: "c", offset: 0 },
    });
    first.push(event("user:1", "e", 9, 0));
    first.drop(1012);
    const second = await acceptWith(socket, 2, {
      sid: "sid-2",
      recovered: true,
      recovery: { "user:1": { recovered: true, epoch: "e", offset: 12, replayed: 3 } },
      positions: { "user:1": { epoch: "e", offset: 12 }, "channel:8": { epoch: "g", offset: 4 } },
    });
    assert.deepEqual(second.frames("connect")[0].data.recover.rooms, {
      "channel:5": { epoch: "c", offset: 0 },
      "user:1": { epoch: "e", offset: 9 },
    });
    const got = [];
    socket.on("events", (data) => got.push(data.n));
    for (const offset of [10, 11, 12]) second.push(event("user:1", "e", offset, offset));
    assert.deepEqual(got, [10, 11, 12], "the replay is not taken for duplicates");
    assert.deepEqual(socket.positions["channel:8"], { epoch: "g", offset: 4 });
  });

  test("a `position` event starts a room entered later, and is passed on", async () => {
    const [socket, ws] = await seen([event("channel:5", "c", 3, 0)]);
    const got = [];
    socket.on("position", (data) => got.push(data));
    ws.push({ event: "position", data: { room: "channel:6", epoch: "d", offset: 11 } });
    ws.push({ event: "position", data: { room: "channel:5", epoch: "c", offset: 1 } });
    assert.equal(got.length, 2);
    assert.deepEqual(socket.positions, {
      "channel:5": { epoch: "c", offset: 3 },
      "channel:6": { epoch: "d", offset: 11 },
    });
  });
});

describe("recovery_failed", () => {
  test("from the connect ack: per failed room, after connect, position adopted", async () => {
    const [socket, first] = await seen([
      event("user:1", "e", 4, 0),
      event("channel:5", "c", 2, 0),
    ]);
    const order = [];
    socket.on("connect", () => order.push(["connect", socket.recovered]));
    socket.on("recovery_failed", (room, details) => order.push([room, details]));
    first.drop(1012);
    await acceptWith(socket, 2, {
      sid: "sid-2",
      recovered: false,
      recovery: {
        "user:1": { recovered: false, reason: "trimmed", epoch: "e", offset: 90 },
        "channel:5": { recovered: true, epoch: "c", offset: 2, replayed: 0 },
      },
    });
    assert.deepEqual(order, [
      ["connect", false],
      ["user:1", { reason: "trimmed", epoch: "e", offset: 90 }],
    ]);
    assert.deepEqual(socket.positions["user:1"], { epoch: "e", offset: 90 });
    assert.deepEqual(socket.positions["channel:5"], { epoch: "c", offset: 2 });
  });

  test("a `recovery` event: passed on, recovered false when it failed", async () => {
    const [socket, first] = await seen([
      event("user:1", "e", 4, 0),
      event("channel:5", "c", 2, 0),
    ]);
    const recoveries = [];
    const failures = [];
    socket.on("recovery", (data) => recoveries.push(data));
    socket.on("recovery_failed", (room, details) => failures.push([room, details]));
    first.drop(1012);
    const second = await acceptWith(socket, 2, { sid: "sid-2", recovered: true });
    assert.equal(socket.recovered, true);
    const ok = { room: "channel:5", recovered: true, epoch: "c", offset: 4, replayed: 2 };
    second.push({ event: "recovery", data: ok });
    assert.equal(socket.recovered, true);
    assert.deepEqual(socket.positions["channel:5"], { epoch: "c", offset: 2 }, "replay moves it");
    const bad = { room: "channel:5", recovered: false, reason: "epoch", epoch: "d", offset: 7 };
    second.push({ event: "recovery", data: bad });
    assert.equal(socket.recovered, false);
    assert.deepEqual(recoveries, [ok, bad]);
    assert.deepEqual(failures, [["channel:5", { reason: "epoch", epoch: "d", offset: 7 }]]);
    assert.deepEqual(socket.positions["channel:5"], { epoch: "d", offset: 7 });
  });

  test("a live event with a new epoch for a known room", async () => {
    const [socket, first] = await seen([event("user:1", "e", 40, 0)]);
    first.drop(1012);
    const ws = await acceptWith(socket, 2, { sid: "sid-2", recovered: true, recovery: {} });
    assert.equal(socket.recovered, true);
    const order = [];
    socket.on("recovery_failed", (room, details) => order.push([room, details]));
    socket.on("events", (data) => order.push(["events", data.n]));
    ws.push(event("user:1", "f", 1, "first of the new epoch"));
    ws.push(event("user:1", "f", 1, "duplicate"));
    ws.push(event("channel:9", "g", 3, "a new room is no failure"));
    assert.deepEqual(order, [
      ["user:1", { reason: "epoch", epoch: "f", offset: 1 }],
      ["events", "first of the new epoch"],
      ["events", "a new room is no failure"],
    ]);
    assert.deepEqual(socket.positions["user:1"], { epoch: "f", offset: 1 });
    assert.equal(socket.recovered, false, "a room failed");
  });

  test("recovery and recovery_failed cannot be emitted", () => {
    const socket = open({ autoConnect: false });
    assert.throws(() => socket.emit("recovery_failed", {}), /reserved/);
    assert.throws(() => socket.emit("recovery", {}), /reserved/);
  });
});

describe("history", () => {
  test("sends room, epoch and offset with an ack and resolves with its data", async () => {
    const [socket, ws] = await seen([]);
    const reply = socket.history("user:1", { room: "user:1", epoch: "e", offset: 40 });
    const frame = ws.frames("history")[0];
    assert.deepEqual(frame.data, { room: "user:1", epoch: "e", offset: 40 });
    const data = {
      recovered: true,
      epoch: "e",
      offset: 42,
      events: [
        { event: "events", data: { n: 41 }, offset: 41 },
        { event: "events", data: { n: 42 }, offset: 42 },
      ],
    };
    ws.push({ ack: frame.ack, data });
    assert.deepEqual(await reply, data);
    assert.deepEqual(socket.positions, {}, "history events are the page's, not live");
  });

  test("an error reply rejects; sent once connected when called before", async () => {
    const socket = open();
    const reply = socket.history("user:2", { epoch: "e", offset: 1 });
    const ws = await acceptWith(socket, 1, { sid: "s" });
    await until(() => ws.frames("history").length, "the history frame");
    const frame = ws.frames("history")[0];
    ws.push({ ack: frame.ack, error: { code: "forbidden", message: "not in the room" } });
    await assert.rejects(reply, { code: "forbidden" });
  });
});
