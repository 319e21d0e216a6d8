"""The scale benchmark's scenarios, run against one target in turn:

1. connects: `--clients` authenticated connects (JWT checked, user loaded from the
   database), `--concurrency` at a time: connects per second;
2. memory: server RSS growth per idle authenticated connection, those clients open;
3. fan-out, one instance: the clients in one room, `--messages` room emits from
   server code in another process (this one) as fast as it can: deliveries per second
   from the first emit to the last delivery; then, for our server, the seconds until
   the closed clients have left the room's state (the next scenario waits for it);
4. fan-out, two instances sharing Redis: the clients split over both; and how much CPU
   an instance spends on `--solo-messages` emits to a room that has no member on it;
5. chat streaming: `--streams` clients, one per user, and an emitter process
   (bench.scale.emitter) sending `--tps` events/s to each user's room for `--tokens`
   tokens: emitter-to-client latency (sender's clock in the payload, same machine)
   and server CPU.

The ceiling runs 1-3 only (it has no Redis and no database: its connect only decodes
the JWT).
"""

import asyncio
import json
import statistics
import time
import uuid

from bench.harness import cpu_seconds, percentile, plan_files, rss_bytes, run_module
from bench.rawws import RawSocket
from bench.scale.clients import Arrivals, close_all, gather_limited
from bench.scale.targets import Target

ROOM = "bench"
SOLO_ROOM = "bench-solo"


async def connect_all(target: Target, users: list[dict], concurrency: int):
    """Open one authenticated socket per user, spread over the target's instances."""
    ports = target.ports
    clients: list[RawSocket | None] = [None] * len(users)

    async def one(i: int) -> None:
        clients[i] = await target.open_client(ports[i % len(ports)], users[i]["token"])

    await gather_limited([one(i) for i in range(len(users))], concurrency)
    return clients


def keeping_last(on_frame, last: list):
    """`on_frame` that also keeps the last frame in `last`."""

    def keep(frame: bytes) -> None:
        last[:] = [frame]
        on_frame(frame)

    return keep


async def fan_out(
    target: Target, clients: list, count: int, room: str = ROOM, emitter=None
) -> dict:
    """Deliveries/s of `count` emits to every client, and each instance's CPU."""
    # Warm up (route caches, pub/sub subscriptions), then measure.
    for n in (3, count):
        arrivals = Arrivals(len(clients))

        def counter(i: int, n=n, got=arrivals.got, complete=arrivals.complete):
            def on_frame(frame: bytes) -> None:
                if b'"bench"' in frame:
                    got[i] += 1
                    if got[i] == n:
                        complete()

            return on_frame

        for i, sock in enumerate(clients):
            sock.on_frame = counter(i)
        # One client keeps its last frame: whether the room's events carried a
        # position (history on for the room's kind, HISTORY_ROOM_KINDS).
        last: list[bytes] = []
        clients[0].on_frame = keeping_last(clients[0].on_frame, last)
        cpu0 = [cpu_seconds(pid) for pid in target.pids]
        clients_cpu0 = time.process_time()
        if target.meter is not None:
            target.meter.start()
        started = time.perf_counter()
        await target.emit_burst(room, n, emitter)
        if not await arrivals.wait(120):
            raise RuntimeError(
                f"{target.name}: {sum(arrivals.got)} of {n * len(clients)} delivered"
            )
        elapsed = time.perf_counter() - started
        cpu = [cpu_seconds(pid) - c for pid, c in zip(target.pids, cpu0, strict=True)]
        clients_cpu = time.process_time() - clients_cpu0
    result = {
        "messages": count,
        "deliveries": count * len(clients),
        "seconds": elapsed,
        "per_second": count * len(clients) / elapsed,
        "server_cpu": cpu,
        # The measuring side's own CPU (this process: the clients and the emits).
        "clients_cpu": clients_cpu,
        "positioned": b'"offset":' in last[0],
    }
    if target.meter is not None:
        result["redis_ops"] = target.meter.stop(count * len(clients))
    return result


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


async def streaming(target: Target, clients: list, users: list, args, env) -> dict:
    """Latency of paced events from an emitter process to each user's socket."""
    latencies: list[float] = []
    steady: list[float] = []
    arrivals = Arrivals(len(clients))
    got, complete = arrivals.got, arrivals.complete
    first = [0.0] * len(clients)

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
                complete()

        return on_frame

    for i, sock in enumerate(clients):
        sock.on_frame = counter(i)
    plan_path, out_path = plan_files(
        {
            "users": users,
            "tps": args.tps,
            "tokens": args.tokens,
            "redis_url": target.redis_url,
            "channel": target.channel,
        }
    )
    emitter = await run_module(
        "bench.scale.emitter", target.kind, str(plan_path), str(out_path), env=env
    )
    cpu0, wall0 = cpu_seconds(target.pids[0]), time.monotonic()
    clients_cpu0 = time.process_time()
    if target.meter is not None:
        # From the emitter's start: its own connecting counts in what streaming costs.
        target.meter.start()
    code = await emitter.wait()
    if not await arrivals.wait(30):
        raise RuntimeError(
            f"{target.name}: emitter exited {code}; "
            f"{sum(got)} of {args.tokens * len(clients)} events received"
        )
    wall = time.monotonic() - wall0
    cpu = cpu_seconds(target.pids[0]) - cpu0
    clients_cpu = time.process_time() - clients_cpu0
    result = {
        "events": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "steady_p99_ms": percentile(steady, 99) if steady else None,
        "server_cpu_percent": 100 * cpu / wall,
        "clients_cpu_percent": 100 * clients_cpu / wall,
        "emitter_cpu": json.loads(out_path.read_text())["cpu"],
    }
    if target.meter is not None:
        result["redis_ops"] = target.meter.stop(len(latencies))
    return result


async def one_instance(target: Target, users: list[dict], args, env) -> dict:
    """Scenarios 1-3 (and 5, streaming, where the target has Redis)."""
    result: dict = {}
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
        "server_cpu_ms_per_connect": 1000 * (cpu_seconds(pid) - cpu0) / len(clients),
    }
    await asyncio.sleep(1.0)
    result["memory"] = {
        "connections": len(clients),
        "bytes_per_connection": (rss_bytes(pid) - rss0) / len(clients),
    }
    emitter = await target.emitter()
    await target.join(ROOM, clients, users[: args.clients])
    result["fanout_1"] = await fan_out(target, clients, args.messages, ROOM, emitter)
    close_all(clients)
    # The next scenario starts once the server has handled these disconnects, so
    # they do not fall into its connects and latencies.
    settled = await target.settle(ROOM)
    if settled is not None:
        result["disconnects"] = {"count": len(clients), "seconds": settled}
    if target.through_redis:
        streamers = users[: args.streams]
        clients = await connect_all(target, streamers, args.concurrency)
        result["streaming"] = await streaming(target, clients, streamers, args, env)
        close_all(clients)
    return result


async def two_instances(
    target: Target, users: list[dict], args, *, solo: bool = True
) -> dict:
    """Scenario 4: fan-out over two instances, and (`solo`) the solo room's cost on
    B."""
    result: dict = {}
    clients = await connect_all(target, users[: args.clients], args.concurrency)
    emitter = await target.emitter()
    await target.join(ROOM, clients, users[: args.clients])
    result["fanout_2"] = await fan_out(target, clients, args.messages, ROOM, emitter)
    if not solo:
        close_all(clients)
        return result
    on_a = [c for i, c in enumerate(clients) if i % 2 == 0][: args.solo_clients]
    users_a = [u for i, u in enumerate(users[: args.clients]) if i % 2 == 0]
    result["solo"] = await solo_cpu(
        target, on_a, users_a[: len(on_a)], args.solo_messages
    )
    close_all(clients)
    return result


async def run_target(
    target: Target, users: list[dict], args, env, *, solo: bool = True
) -> dict:
    """Every scenario against one target (`solo`: with the solo room's)."""
    target.start(1)
    try:
        result = await one_instance(target, users, args, env)
    finally:
        target.stop()
    if not target.through_redis:
        return result
    target.start(2)
    try:
        result |= await two_instances(target, users, args, solo=solo)
    finally:
        target.stop()
    return result


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


def run_on_new_loop(coro):
    """Run a target's scenarios on a loop of their own; the result."""
    try:
        return asyncio.run(coro)
    finally:
        # The channel layer and state of this process belong to the closed loop.
        from channels.layers import channel_layers

        from realtime import state

        channel_layers.backends = {}
        state.reset_state()
