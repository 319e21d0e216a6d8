"""The measuring side of bench.recovery: one client per user over all its
connections (what it saw, what it presented, how long each recovery took), and the
churn that resets sockets each second."""

import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.harness import HOST
from bench.rawws import RawSocket

CONNECT_TIMEOUT = 10.0  # seconds for a connect ack, on a machine at full load
CONNECT_ATTEMPTS = 20  # a client that cannot reconnect this often fails the run
CATCH_UP_TIMEOUT = 60.0  # seconds after the worker for every client to have it all


@dataclass
class Reader:
    """One user's client over all its connections: what it knows, what it got."""

    entry: dict
    room: str
    sock: RawSocket | None = None
    sid: str | None = None
    epoch: str | None = None
    top: int = -1  # the highest offset received (the position it presents)
    base: int | None = None  # the first connect's position: events after it are due
    up: bool = False  # connected and acked
    seen: dict = field(default_factory=dict)  # offset -> connection it came on
    connection: int = 0  # connections so far
    presented: list = field(default_factory=list)  # offset presented, per reconnect
    anomalies: list = field(default_factory=list)  # what a duplicate looked like
    pieces: dict = field(default_factory=dict)  # offset -> text delta
    arrival_text: list = field(default_factory=list)  # deltas as they arrived
    duplicates: int = 0
    out_of_order: int = 0
    unpositioned: int = 0
    epochs_changed: int = 0
    not_recovered: list = field(default_factory=list)  # reasons
    recoveries: int = 0
    replayed: int = 0
    latencies: list = field(default_factory=list)  # ms, connect sent -> replayed
    acks: list = field(default_factory=list)  # ms, connect sent -> its ack (returns)
    handshakes: list = field(default_factory=list)  # ms, TCP + upgrade
    cuts: int = 0
    interrupted: int = 0  # cut again before its recovery finished
    connect_failures: int = 0
    errors: list = field(default_factory=list)
    _sent_at: float = 0.0
    _replay_to: int | None = None

    async def connect(self, port: int, *, recover: bool) -> None:
        """Open a socket, send connect (with recover after a cut), wait for the ack."""
        started = time.perf_counter()
        sock = await RawSocket.connect(HOST, port, "/ws/")
        self.handshakes.append(1000 * (time.perf_counter() - started))
        acked = asyncio.get_running_loop().create_future()
        self.sock = sock
        sock.on_frame = lambda frame: self.on_frame(frame, acked, recover)
        data: dict = {"token": self.entry["token"]}
        if recover:
            position = {"epoch": self.epoch, "offset": self.top}
            data["recover"] = {"sid": self.sid, "rooms": {self.room: position}}
        self.connection += 1
        if recover:
            self.presented.append((self.connection, port, self.top))
        self._sent_at = time.perf_counter()
        sock.send(json.dumps({"event": "connect", "ack": 0, "data": data}))
        try:
            await asyncio.wait_for(acked, CONNECT_TIMEOUT)
        except BaseException:
            sock.abort()
            raise

    def on_frame(self, frame: bytes, acked: asyncio.Future, recover: bool) -> None:
        """Every frame of the current connection."""
        now = time.perf_counter()
        msg = json.loads(frame)
        if "ack" in msg:
            self._on_ack(msg, now, acked, recover)
            return
        if msg.get("event") != "events":
            return
        if "room" not in msg:
            self.unpositioned += 1
            return
        epoch, offset = msg["epoch"], msg["offset"]
        if epoch != self.epoch:
            self.epochs_changed += 1
            self.epoch = epoch
        if offset in self.seen or offset < self.top:
            if offset in self.seen:
                self.duplicates += 1
            else:
                self.out_of_order += 1
            self.anomalies.append(
                {
                    "room": self.room,
                    "offset": offset,
                    "first_on": self.seen.get(offset),
                    "now_on": self.connection,
                    "top": self.top,
                    "presented": self.presented[-3:],
                    "replaying_to": self._replay_to,
                }
            )
        self.seen.setdefault(offset, self.connection)
        self.top = max(self.top, offset)
        event = msg["data"]["data"]
        if event["type"] == "message":
            piece = event["data"]["content"]
            self.pieces.setdefault(offset, piece)
            self.arrival_text.append(piece)
        if self._replay_to is not None and offset >= self._replay_to:
            self.latencies.append(1000 * (now - self._sent_at))
            self._replay_to = None

    def _on_ack(self, msg: dict, now: float, acked, recover: bool) -> None:
        data = msg.get("data") or {}
        if "sid" not in data:
            self.errors.append(str(msg)[:200])
            if not acked.done():
                acked.set_exception(ConnectionError(f"connect refused: {msg}"))
            return
        self.sid = data["sid"]
        if not recover:
            position = data["positions"][self.room]
            self.epoch, self.top = position["epoch"], position["offset"]
            if self.base is None:
                self.base = self.top
        else:
            self.recoveries += 1
            self.acks.append(1000 * (now - self._sent_at))
            result = data.get("recovery", {}).get(self.room)
            if result is None or not result["recovered"]:
                # A real client reloads from REST here; the events it did not get
                # are counted as lost below all the same.
                self.not_recovered.append((result or {}).get("reason", "missing"))
                if result is not None:
                    self.epoch = result["epoch"]
            elif result["replayed"] == 0:
                self.latencies.append(1000 * (now - self._sent_at))
            else:
                self.replayed += result["replayed"]
                self.presented.append(("ack", result["offset"], result["replayed"]))
                self._replay_to = result["offset"]
        self.up = True
        if not acked.done():
            acked.set_result(None)

    def cut(self) -> None:
        """Reset the connection: no close frame, frames in flight lost."""
        self.up = False
        self.cuts += 1
        if self._replay_to is not None:
            self.interrupted += 1
            self._replay_to = None
        self.sock.abort()

    async def come_back(self, ports: list[int], jitter: float, rng) -> None:
        """Reconnect after a random delay to a random instance, recovering."""
        await asyncio.sleep(rng.uniform(0, jitter))
        for _ in range(CONNECT_ATTEMPTS - 1):
            try:
                await self.connect(rng.choice(ports), recover=True)
                return
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.connect_failures += 1
                self.errors.append(repr(exc)[:200])
                await asyncio.sleep(0.1)
        await self.connect(rng.choice(ports), recover=True)


async def churn(readers, args, ports, rng, stop: asyncio.Event) -> None:
    """Each second, reset a fraction of the connected sockets; they come back."""
    returns = []
    count = round(args.churn * len(readers))
    while True:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
            break
        except TimeoutError:
            pass
        up = [r for r in readers if r.up]
        for reader in rng.sample(up, min(count, len(up))):
            reader.cut()
            returns.append(
                asyncio.create_task(reader.come_back(ports, args.jitter, rng))
            )
    await asyncio.gather(*returns)
