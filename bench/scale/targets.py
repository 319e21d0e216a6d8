"""The systems under test of the scale benchmark, one class per kind of server: how
it is started (one or two instances), how a client signs in, how clients are put in a
room, and how server code emits to that room."""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from bench.harness import HOST, Spawned, module_command
from bench.rawws import RawSocket
from bench.scale.clients import gather_limited
from bench.socketio_server import redis_emitter

PAD = "x" * 100  # a room message of about the size of a chat event
# How long a thousand disconnects may take to leave the room's state, on a busy
# machine and a Redis Cluster, before the benchmark gives up.
SETTLE_TIMEOUT = 120.0


class Meter(Protocol):
    """Counts what a scenario costs besides CPU (bench.cluster: Redis commands)."""

    def start(self) -> None:
        """Begin counting."""

    def stop(self, deliveries: int) -> dict:
        """What was counted since start(), for that many deliveries."""


@dataclass
class Target:
    """One system under test, started with 1 or 2 instances."""

    name: str
    env: dict
    redis_url: str
    channel: str  # socketio's pub/sub channel
    ports: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    _stop: list = field(default_factory=list)
    # Counts each fan-out and streaming scenario (its results' "redis_ops").
    meter: Meter | None = None

    # What the streaming emitter process is told to emit through.
    kind: ClassVar[str]
    # Instances share state through Redis: two instances, and emits from another
    # process, work (scenarios 4 and 5).
    through_redis: ClassVar[bool] = True

    def start(self, instances: int) -> None:
        """Start the instances and note their ports and pids."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every instance started."""
        while self._stop:
            self._stop.pop()()

    async def open_client(self, port: int, token: str) -> RawSocket:
        """An authenticated client socket."""
        raise NotImplementedError

    async def join(self, room: str, clients: list[RawSocket], users: list[dict]):
        """Put the clients in a room."""

    async def emitter(self):
        """What server code emits with (None: nothing to set up)."""
        return None

    async def settle(self, room: str) -> float | None:
        """Seconds until the room's closed clients have left it (None: not known)."""
        return None

    async def emit_burst(self, room: str, count: int, emitter) -> None:
        """`count` room emits from server code, one after another, as fast as it
        goes. (Not all at once: redis-py 8's asyncio pool fails past 100 concurrent
        commands, which python-socketio's publish does not survive.)"""
        raise NotImplementedError


class Ours(Target):
    """This project (realtime.launcher.Fleet) under the ASGI server in its name."""

    kind = "ours"

    @property
    def server(self) -> str:
        """The ASGI server it runs under (uvicorn or daphne)."""
        return self.name.split("-")[1]

    def start(self, instances: int) -> None:
        """The fleet's server processes, without a cleanup worker."""
        from realtime.launcher import Fleet

        # Cleanup is not what is measured: no worker, in-process or separate.
        fleet = Fleet(
            env={**self.env, "WORKER_IN_PROCESS": "false"},
            servers=[self.server] * instances,
            worker=False,
        ).start()
        self._stop.append(fleet.stop)
        self.ports = [p.port for p in fleet.instances]
        self.pids = [p.proc.pid for p in fleet.instances]

    async def open_client(self, port: int, token: str) -> RawSocket:
        """A socket past our `connect` event."""
        sock = await RawSocket.connect(HOST, port, "/ws/")
        hello = {"event": "connect", "data": {"token": token}, "ack": 0}
        sock.send(json.dumps(hello))
        reply = await sock.recv()
        if b'"sid"' not in reply:
            raise RuntimeError(f"connect refused: {reply[:200]!r}")
        return sock

    async def join(self, room: str, clients: list[RawSocket], users: list[dict]):
        """Server code enters the users' sessions into the room."""
        from realtime import emit

        await emit.room_enter_for_users(
            room=room, user_ids=[u["user_id"] for u in users]
        )
        deadline = time.monotonic() + 30
        while len(await emit.room_sessions(room=room)) < len(clients):
            assert time.monotonic() < deadline, "room join did not finish"
            await asyncio.sleep(0.05)

    async def settle(self, room: str) -> float | None:
        """Seconds until the room's state holds no session."""
        from realtime import emit

        started = time.monotonic()
        while left := await emit.room_sessions(room=room):
            if time.monotonic() - started > SETTLE_TIMEOUT:
                raise RuntimeError(
                    f"{self.name}: {len(left)} closed sessions still in {room} "
                    f"after {SETTLE_TIMEOUT:g} s"
                )
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def emit_burst(self, room: str, count: int, emitter) -> None:
        """`realtime.emit.room_emit`, as server code calls it."""
        from realtime import emit

        for i in range(count):
            await emit.room_emit(room=room, event="bench", data={"i": i, "pad": PAD})


class SpawnedTarget(Target):
    """A server of the bench package, one process per instance."""

    health_path: ClassVar[str]

    def command(self, port: int) -> list[str]:
        """The command of one instance on `port`."""
        raise NotImplementedError

    def start(self, instances: int) -> None:
        """One process per instance, each on a free port."""
        from realtime.launcher import free_port

        self.ports, self.pids = [], []
        for _ in range(instances):
            port = free_port()
            server = Spawned(self.command(port), port, self.env, self.health_path)
            server.start()
            self._stop.append(server.terminate)
            self.ports.append(port)
            self.pids.append(server.proc.pid)


class SocketIO(SpawnedTarget):
    """The reference: bench/socketio_server.py, python-socketio under uvicorn."""

    kind = "socketio"
    health_path = "/socket.io/?EIO=4&transport=polling"

    def command(self, port: int) -> list[str]:
        """The reference server on `port`, on the run's Redis channel."""
        return module_command(
            "bench.socketio_server",
            *["--port", str(port), "--redis-url", self.redis_url],
            *["--channel", self.channel],
        )

    async def open_client(self, port: int, token: str) -> RawSocket:
        """An Engine.IO WebSocket past its Socket.IO connect (token in `auth`)."""
        path = "/socket.io/?EIO=4&transport=websocket"
        sock = await RawSocket.connect(HOST, port, path, eio=True)
        opening = await sock.recv()
        assert opening.startswith(b"0"), opening
        sock.send("40" + json.dumps({"token": token}))
        reply = await sock.recv()
        if not reply.startswith(b"40"):
            raise RuntimeError(f"connect refused: {reply[:200]!r}")
        return sock

    async def join(self, room: str, clients: list[RawSocket], users: list[dict]):
        """Each client sends `join` and waits for its ack."""

        async def one(sock: RawSocket) -> None:
            sock.on_frame = None  # the ack comes through recv()
            sock.send("421" + json.dumps(["join", room]))
            while not (await sock.recv()).startswith(b"431"):
                pass

        await gather_limited([one(s) for s in clients], 50)

    async def emitter(self):
        """python-socketio's write-only manager."""
        return redis_emitter(self.redis_url, self.channel)

    async def emit_burst(self, room: str, count: int, emitter) -> None:
        """`AsyncRedisManager.emit`, as server code outside the servers calls it."""
        for i in range(count):
            await emitter.emit("bench", {"i": i, "pad": PAD}, room=room)


class Ceiling(SpawnedTarget):
    """bench/ws_server.py: a bare `websockets` broadcast server, no Redis, no
    database; its sockets are in its one room from the start."""

    kind = "ceiling"
    through_redis = False
    health_path = "/"

    def command(self, port: int) -> list[str]:
        """The ceiling server on `port`."""
        return module_command("bench.ws_server", "--port", str(port))

    async def open_client(self, port: int, token: str) -> RawSocket:
        """A socket whose first frame, the JWT, was answered "ok"."""
        sock = await RawSocket.connect(HOST, port, "/")
        sock.send(token)
        if await sock.recv() != b"ok":
            raise RuntimeError("connect refused")
        return sock

    async def emitter(self):
        """The ceiling's control socket: its first frame makes it the emitter."""
        return await RawSocket.connect(HOST, self.ports[0], "/")

    async def emit_burst(self, room: str, count: int, emitter) -> None:
        """One command; the server broadcasts `count` frames of a room message's
        size."""
        size = len(json.dumps({"event": "bench", "data": {"i": 0, "pad": PAD}}))
        emitter.send(f"bcast {count} {size}")


# Every target, in the report's column order.
TARGETS: dict[str, type[Target]] = {
    "ours-uvicorn": Ours,
    "ours-daphne": Ours,
    "socketio": SocketIO,
    "ceiling": Ceiling,
}
