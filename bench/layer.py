"""Channel layer throughput of one process: RedisClusterChannelLayer on a Redis
Cluster of its own against channels-redis on the single Redis, same script.

    .venv/bin/python -m bench.layer --messages 20000 --size 256

Each layer sends `--messages` messages to one process-local channel (as instances
do: realtime.outbox), one await after the other and then `--concurrency` at a time,
and receives them all back; the same for a group_send to `--members` channels.
"""

import argparse
import asyncio
import time
import uuid

from channels_redis.core import RedisChannelLayer

from bench.report import measure_table
from realtime.cluster_layer import RedisClusterChannelLayer
from testing.redis_cluster import RedisClusterProcesses
from testing.services import REDIS_TEST_URL

MAX_CONNECTIONS = 1000  # as REDIS_MAX_CONNECTIONS gives the app's layer


def message(size: int, n: int) -> dict:
    """A room.emit of about `size` bytes of frame, as the outbox sends."""
    return {"type": "room.emit", "room": "channel:bench", "frame": "x" * size, "n": n}


async def rate(count: int, calls) -> float:
    """Calls per second of `count` awaits of calls(i)."""
    start = time.perf_counter()
    for i in range(count):
        await calls(i)
    return count / (time.perf_counter() - start)


async def concurrent_rate(count: int, width: int, calls) -> float:
    """Calls per second with `width` of them in flight at a time."""
    start = time.perf_counter()
    for base in range(0, count, width):
        await asyncio.gather(*(calls(i) for i in range(base, min(count, base + width))))
    return count / (time.perf_counter() - start)


async def measure(layer, args) -> dict[str, float]:
    """Sends/s and receives/s of one layer."""
    n, size = args.messages, args.size
    channel = await layer.new_channel(prefix="rt-instance.")
    out = {
        "send/s (one at a time)": await rate(
            n, lambda i: layer.send(channel, message(size, i))
        )
    }
    out["receive/s"] = await rate(n, lambda i: layer.receive(channel))
    out[f"send/s ({args.concurrency} in flight)"] = await concurrent_rate(
        n, args.concurrency, lambda i: layer.send(channel, message(size, i))
    )
    out["receive/s (after concurrent sends)"] = await rate(
        n, lambda i: layer.receive(channel)
    )
    members = [await layer.new_channel(prefix=f"m{i}") for i in range(args.members)]
    for member in members:
        await layer.group_add("bench", member)
    sends = max(1, n // args.members)
    out[f"group_send/s ({args.members} members)"] = await rate(
        sends, lambda i: layer.group_send("bench", message(size, i))
    )
    await layer.flush()
    return out


async def run(args) -> None:
    prefix = f"bench-layer-{uuid.uuid4().hex[:8]}:asgi"
    nodes = RedisClusterProcesses().start()
    try:
        ours = RedisClusterChannelLayer(
            url=nodes.url,
            prefix=prefix,
            capacity=args.messages + 1,
            max_connections=MAX_CONNECTIONS,
        )
        # The pool size the app gives both (REDIS_MAX_CONNECTIONS).
        host = {"address": args.redis_url, "max_connections": MAX_CONNECTIONS}
        theirs = RedisChannelLayer(
            hosts=[host], prefix=prefix, capacity=args.messages + 1
        )
        results = {"cluster layer": await measure(ours, args)}
        await ours.close()
        results["channels-redis (one Redis)"] = await measure(theirs, args)
        await theirs.close_pools()
    finally:
        nodes.stop()
    for name, figures in results.items():
        print(f"\n{name}, {args.messages} messages of {args.size} B\n")
        print(measure_table([(k, f"{v:,.0f}") for k, v in figures.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--members", type=int, default=30)
    parser.add_argument(
        "--redis-url", default=REDIS_TEST_URL, help="the Redis of channels-redis"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
