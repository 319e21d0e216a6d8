"""Scale benchmark: this project against python-socketio with its AsyncRedisManager,
and a raw `websockets` broadcast server as the ceiling, in one run on one machine.

    .venv/bin/python bench/scale_bench.py            # full scale, about 5 minutes
    .venv/bin/python bench/scale_bench.py --json out.json --targets socketio,ceiling

Targets: `ours-uvicorn`, `ours-daphne` (this project under each ASGI server),
`socketio` (bench/socketio_server.py under uvicorn) and `ceiling`
(bench/ws_server.py). Every target gets the same scenarios, over the real Redis and a
fresh PostgreSQL database:

1. connects: `--clients` authenticated connects (JWT checked, user loaded from the
   database), `--connect-concurrency` at a time: connects per second;
2. memory: server RSS growth per idle authenticated connection, those clients open;
3. fan-out, one instance: the clients in one room, `--messages` room emits from
   server code in another process (this one) as fast as it can: deliveries per second
   from the first emit to the last delivery;
4. fan-out, two instances sharing Redis: the clients split over both; and how much CPU
   an instance spends on `--solo-messages` emits to a room that has no member on it;
5. chat streaming: `--streams` clients, one per user, and an emitter process sending
   `--tps` events/s to each user's room for `--tokens` tokens: emitter-to-client
   latency (sender's clock in the payload, same machine) and server CPU.

Clients are bench/rawws.py sockets, all in this process. The ceiling runs 1-3 only
(it has no Redis and no database: its connect only decodes the JWT).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Spawned,
    add_service_args,
    cpu_seconds,
    percentile,
    rss_bytes,
    run_services,
)
from bench.rawws import RawSocket  # noqa: E402
from bench.report import scale_table, write_json  # noqa: E402

HOST = "127.0.0.1"
ROOM = "bench"
SOLO_ROOM = "bench-solo"
PAD = "x" * 100  # a room message of about the size of a chat event
TARGETS = ["ours-uvicorn", "ours-daphne", "socketio", "ceiling"]


# --- servers --------------------------------------------------------------------------


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

    @property
    def kind(self) -> str:
        return self.name.split("-")[0]

    def start(self, instances: int) -> None:
        from realtime.launcher import Fleet, free_port

        if self.kind == "ours":
            # Cleanup is not what is measured: no worker, in-process or separate.
            fleet = Fleet(
                env={**self.env, "WORKER_IN_PROCESS": "false"},
                servers=[self.name.split("-")[1]] * instances,
                worker=False,
            ).start()
            self._stop.append(fleet.stop)
            self.ports = [p.port for p in fleet.instances]
            self.pids = [p.proc.pid for p in fleet.instances]
            return
        self.ports, self.pids = [], []
        for _ in range(instances):
            port = free_port()
            if self.kind == "socketio":
                cmd = [sys.executable, str(ROOT / "bench" / "socketio_server.py")]
                cmd += ["--port", str(port), "--redis-url", self.redis_url]
                cmd += ["--channel", self.channel]
                health = "/socket.io/?EIO=4&transport=polling"
            else:
                cmd = [sys.executable, str(ROOT / "bench" / "ws_server.py")]
                cmd += ["--port", str(port)]
                health = "/"
            server = Spawned(cmd, port, self.env, health).start()
            self._stop.append(server.terminate)
            self.ports.append(port)
            self.pids.append(server.proc.pid)

    def stop(self) -> None:
        while self._stop:
            self._stop.pop()()

    # --- clients ---

    async def open_client(self, port: int, token: str) -> RawSocket:
        """An authenticated client socket."""
        if self.kind == "ours":
            sock = await RawSocket.connect(HOST, port, "/ws/")
            hello = {"event": "connect", "data": {"token": token}, "ack": 0}
            sock.send(json.dumps(hello))
            reply = await sock.recv()
            if b'"sid"' not in reply:
                raise RuntimeError(f"connect refused: {reply[:200]!r}")
        elif self.kind == "socketio":
            path = "/socket.io/?EIO=4&transport=websocket"
            sock = await RawSocket.connect(HOST, port, path, eio=True)
            opening = await sock.recv()
            assert opening.startswith(b"0"), opening
            sock.send("40" + json.dumps({"token": token}))
            reply = await sock.recv()
            if not reply.startswith(b"40"):
                raise RuntimeError(f"connect refused: {reply[:200]!r}")
        else:
            sock = await RawSocket.connect(HOST, port, "/")
            sock.send(token)
            if await sock.recv() != b"ok":
                raise RuntimeError("connect refused")
        return sock

    async def join(self, room: str, clients: list[RawSocket], users: list[dict]):
        """Put the clients in a room."""
        if self.kind == "ours":
            from realtime import emit

            await emit.room_enter_for_users(
                room=room, user_ids=[u["user_id"] for u in users]
            )
            deadline = time.monotonic() + 30
            while len(await emit.room_sessions(room=room)) < len(clients):
                assert time.monotonic() < deadline, "room join did not finish"
                await asyncio.sleep(0.05)
        elif self.kind == "socketio":

            async def one(sock: RawSocket) -> None:
                sock.on_frame = None  # the ack comes through recv()
                sock.send("421" + json.dumps(["join", room]))
                while not (await sock.recv()).startswith(b"431"):
                    pass

            await gather_limited([one(s) for s in clients], 50)
        # The ceiling's sockets are in its one room from the start.

    async def emit_burst(self, room: str, count: int, emitter) -> None:
        """`count` room emits from server code, one after another, as fast as it
        goes. (Not all at once: redis-py 8's asyncio pool fails past 100 concurrent
        commands, which python-socketio's publish does not survive.)"""
        if self.kind == "ours":
            from realtime import emit

            for i in range(count):
                await emit.room_emit(
                    room=room, event="bench", data={"i": i, "pad": PAD}
                )
        elif self.kind == "socketio":
            for i in range(count):
                await emitter.emit("bench", {"i": i, "pad": PAD}, room=room)
        else:
            size = len(json.dumps({"event": "bench", "data": {"i": 0, "pad": PAD}}))
            emitter.send(f"bcast {count} {size}")

    async def emitter(self):
        """What server code emits with: the socketio write-only manager, or the
        ceiling's control socket (ours needs nothing: realtime.emit)."""
        if self.kind == "socketio":
            return socketio_emitter(self.redis_url, self.channel)
        if self.kind == "ceiling":
            return await RawSocket.connect(HOST, self.ports[0], "/")
        return None


def socketio_emitter(redis_url: str, channel: str):
    """python-socketio's write-only manager, as server code outside the servers uses
    it. Its pool gets room for 1,000 connections, as ours does (REDIS_MAX_CONNECTIONS):
    redis-py 8 fails past the default 100 concurrent commands, and 200 streams
    publishing at once then lose events ("Cannot publish to redis... giving up")."""
    import socketio

    return socketio.AsyncRedisManager(
        redis_url,
        channel=channel,
        write_only=True,
        redis_options={"max_connections": 1000},
    )


async def gather_limited(coros: list, limit: int) -> list:
    """Run coroutines with at most `limit` at a time."""
    semaphore = asyncio.Semaphore(limit)

    async def run(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


# --- scenarios ------------------------------------------------------------------------


async def connect_all(target: Target, users: list[dict], concurrency: int):
    """Open one authenticated socket per user, spread over the target's instances."""
    ports = target.ports
    clients: list[RawSocket | None] = [None] * len(users)

    async def one(i: int) -> None:
        clients[i] = await target.open_client(ports[i % len(ports)], users[i]["token"])

    await gather_limited([one(i) for i in range(len(users))], concurrency)
    return clients


def close_all(clients: list[RawSocket]) -> None:
    for sock in clients:
        sock.close()


async def fan_out(
    target: Target, clients: list, count: int, room: str = ROOM, emitter=None
) -> dict:
    """Deliveries/s of `count` emits to every client, and each instance's CPU."""
    # Warm up (route caches, pub/sub subscriptions), then measure.
    for n in (3, count):
        got = [0] * len(clients)
        pending = {"n": len(clients)}
        done = asyncio.Event()

        def counter(i: int, n=n, got=got, pending=pending, done=done):
            def on_frame(frame: bytes) -> None:
                if b'"bench"' in frame:
                    got[i] += 1
                    if got[i] == n:
                        pending["n"] -= 1
                        if pending["n"] == 0:
                            done.set()

            return on_frame

        for i, sock in enumerate(clients):
            sock.on_frame = counter(i)
        cpu0 = [cpu_seconds(pid) for pid in target.pids]
        started = time.perf_counter()
        await target.emit_burst(room, n, emitter)
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
        except TimeoutError:
            raise RuntimeError(
                f"{target.name}: {sum(got)} of {n * len(clients)} delivered"
            ) from None
        elapsed = time.perf_counter() - started
        cpu = [cpu_seconds(pid) - c for pid, c in zip(target.pids, cpu0, strict=True)]
    return {
        "messages": count,
        "deliveries": count * len(clients),
        "seconds": elapsed,
        "per_second": count * len(clients) / elapsed,
        "server_cpu": cpu,
    }


async def solo_cpu(target: Target, clients_a: list, users_a: list, count: int) -> dict:
    """Emits to a room whose members are all on instance A: the CPU instance B spends
    on them (ideally none)."""
    emitter = await target.emitter()
    await target.join(SOLO_ROOM, clients_a, users_a)
    result = await fan_out(target, clients_a, count, SOLO_ROOM, emitter)
    return {
        "messages": count,
        "cpu_a": result["server_cpu"][0],
        "cpu_b": result["server_cpu"][1],
    }


def stream_emitter_main(kind: str, plan_path: str, out_path: str) -> None:
    """Emitter process of the streaming scenario (ours or socketio)."""
    plan = json.loads(Path(plan_path).read_text())

    async def main() -> None:
        if kind == "ours":
            import django

            django.setup()
            from realtime import emit

            async def send(user_id: int, data: dict) -> None:
                await emit.user_emit(user_id=user_id, event="events", data=data)
        else:
            manager = socketio_emitter(plan["redis_url"], plan["channel"])

            async def send(user_id: int, data: dict) -> None:
                await manager.emit("events", data, room=f"user:{user_id}")

        delay = 1.0 / plan["tps"]
        loop = asyncio.get_running_loop()

        async def stream(user: dict, start: float) -> None:
            for i in range(plan["tokens"]):
                await asyncio.sleep(max(0.0, start + i * delay - loop.time()))
                data = {
                    "chat_id": user["chat_id"],
                    "message_id": user["message_id"],
                    "data": {"type": "message", "data": {"content": f"t{i} "}},
                    "ts": time.time(),
                }
                await send(user["user_id"], data)

        start = loop.time() + 0.2
        users = plan["users"]
        await asyncio.gather(
            *(stream(u, start + delay * i / len(users)) for i, u in enumerate(users))
        )
        Path(out_path).write_text(json.dumps({"cpu": cpu_seconds(os.getpid())}))

    asyncio.run(main())


async def streaming(target: Target, clients: list, users: list, args, env) -> dict:
    """Latency of paced events from an emitter process to each user's socket."""
    latencies: list[float] = []
    steady: list[float] = []
    got = [0] * len(clients)
    first = [0.0] * len(clients)
    pending = {"n": len(clients)}
    done = asyncio.Event()

    def counter(i: int):
        def on_frame(frame: bytes) -> None:
            at = frame.find(b'"ts":')
            if at < 0:
                return
            now = time.time()
            sent = float(frame[at + 5 : frame.index(b"}", at)])
            if not first[i]:
                first[i] = sent
            latencies.append((now - sent) * 1000)
            if sent - first[i] >= 1.0:
                steady.append((now - sent) * 1000)
            got[i] += 1
            if got[i] == args.tokens:
                pending["n"] -= 1
                if pending["n"] == 0:
                    done.set()

        return on_frame

    for i, sock in enumerate(clients):
        sock.on_frame = counter(i)
    tmp = Path(tempfile.mkdtemp())
    plan = {
        "users": users,
        "tps": args.tps,
        "tokens": args.tokens,
        "redis_url": target.redis_url,
        "channel": target.channel,
    }
    (tmp / "plan.json").write_text(json.dumps(plan))
    cmd = [sys.executable, __file__, "--stream-emitter", target.kind]
    cmd += [str(tmp / "plan.json"), str(tmp / "out.json")]
    emitter = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, env={**os.environ, **env}
    )
    cpu0, wall0 = cpu_seconds(target.pids[0]), time.monotonic()
    code = await emitter.wait()
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    except TimeoutError:
        raise RuntimeError(
            f"{target.name}: emitter exited {code}; "
            f"{sum(got)} of {args.tokens * len(clients)} events received"
        ) from None
    wall = time.monotonic() - wall0
    cpu = cpu_seconds(target.pids[0]) - cpu0
    return {
        "events": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "steady_p99_ms": percentile(steady, 99) if steady else None,
        "server_cpu_percent": 100 * cpu / wall,
        "emitter_cpu": json.loads((tmp / "out.json").read_text())["cpu"],
    }


async def run_target(target: Target, users: list[dict], args, env) -> dict:
    """Every scenario against one target."""
    result: dict = {}
    # 1-3: one instance.
    target.start(1)
    try:
        pid = target.pids[0]
        warm = await target.open_client(target.ports[0], users[0]["token"])
        warm.close()
        await asyncio.sleep(0.5)
        rss0, cpu0 = rss_bytes(pid), cpu_seconds(pid)
        started = time.perf_counter()
        clients = await connect_all(target, users[: args.clients], args.concurrency)
        elapsed = time.perf_counter() - started
        result["connects"] = {
            "count": len(clients),
            "per_second": len(clients) / elapsed,
            "server_cpu_ms_per_connect": 1000
            * (cpu_seconds(pid) - cpu0)
            / len(clients),
        }
        await asyncio.sleep(1.0)
        result["memory"] = {
            "connections": len(clients),
            "bytes_per_connection": (rss_bytes(pid) - rss0) / len(clients),
        }
        emitter = await target.emitter()
        await target.join(ROOM, clients, users[: args.clients])
        result["fanout_1"] = await fan_out(
            target, clients, args.messages, ROOM, emitter
        )
        close_all(clients)
        if target.kind != "ceiling":
            streamers = users[: args.streams]
            clients = await connect_all(target, streamers, args.concurrency)
            result["streaming"] = await streaming(target, clients, streamers, args, env)
            close_all(clients)
    finally:
        target.stop()
    if target.kind == "ceiling":
        return result
    # 4: two instances sharing Redis.
    target.start(2)
    try:
        clients = await connect_all(target, users[: args.clients], args.concurrency)
        emitter = await target.emitter()
        await target.join(ROOM, clients, users[: args.clients])
        result["fanout_2"] = await fan_out(
            target, clients, args.messages, ROOM, emitter
        )
        on_a = [c for i, c in enumerate(clients) if i % 2 == 0][: args.solo_clients]
        users_a = [u for i, u in enumerate(users[: args.clients]) if i % 2 == 0]
        result["solo"] = await solo_cpu(
            target, on_a, users_a[: len(on_a)], args.solo_messages
        )
        close_all(clients)
    finally:
        target.stop()
    return result


# --- orchestration --------------------------------------------------------------------


def seed_users(count: int) -> list[dict]:
    """Users with access tokens (and chat/message ids for the streaming payload)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from realtime.models import User

    User.objects.bulk_create(
        [User(username=f"scale{i}", name=f"Scale {i}") for i in range(count)]
    )
    users = []
    for user in User.objects.filter(username__startswith="scale").order_by("id"):
        users.append(
            {
                "user_id": user.id,
                "token": str(AccessToken.for_user(user)),
                "chat_id": str(uuid.uuid4()),
                "message_id": str(uuid.uuid4()),
            }
        )
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--solo-clients", type=int, default=100)
    parser.add_argument("--solo-messages", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=250)
    add_service_args(parser)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--stream-emitter", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_emitter:
        stream_emitter_main(*args.stream_emitter)
        return
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")

    results: dict = {}
    with run_services(args, name="scale") as env:
        users = seed_users(max(args.clients, args.streams))
        for name in targets:
            target = Target(
                name=name,
                env=env,
                redis_url=args.redis_url,
                channel=f"{env['REDIS_KEY_PREFIX']}-socketio",
            )
            print(f"== {name}", file=sys.stderr, flush=True)
            results[name] = asyncio.run(run_target(target, users, args, env))
            # The channel layer and state of this process belong to the closed loop.
            from channels.layers import channel_layers

            from realtime import state

            channel_layers.backends = {}
            state.reset_state()
    scale = (
        f"{args.clients} clients, {args.messages} messages; {args.streams} streams "
        f"x {args.tps:g}/s x {args.tokens} tokens; database {args.database}"
    )
    print(f"{scale}\n\n{scale_table(results, [t for t in TARGETS if t in results])}")
    if args.json:
        write_json(args.json, scale, results)


if __name__ == "__main__":
    main()
