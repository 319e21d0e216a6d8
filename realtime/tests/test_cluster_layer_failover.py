"""realtime.cluster_layer through a failover and a slot migration, each on a Redis
Cluster of the test's own."""

import asyncio
import logging

import pytest
from redis.crc import key_slot

from realtime.tests.test_cluster_layer import make_layer, receive
from testing.redis_cluster import RedisClusterProcesses

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


async def test_the_reader_survives_a_failover(redis_prefix, caplog):
    nodes = RedisClusterProcesses().start()
    layer = make_layer(nodes, redis_prefix, blocking_timeout=1, socket_timeout=5)
    try:
        channel = await layer.new_channel(prefix="rt-instance.")
        source = layer.non_local_name(channel)
        key = layer._channel_key(source).decode()
        primary = nodes.client().get_node_from_key(key).port
        replica = nodes.replica_of(primary)
        waiting = asyncio.create_task(layer.receive(channel))
        await asyncio.sleep(0.3)
        reader = layer.inbox.readers[(asyncio.get_running_loop(), source)]
        with caplog.at_level(logging.WARNING, logger="realtime.cluster_layer.inbox"):
            nodes.kill(primary)
            await asyncio.to_thread(nodes.wait_primary, replica)
            await layer.send(channel, {"type": "after.failover"})
            assert await asyncio.wait_for(waiting, 15) == {"type": "after.failover"}
        assert not reader.done()
        assert layer.inbox.readers[(asyncio.get_running_loop(), source)] is reader
        assert "layer reader of" in caplog.text
        await layer.send(channel, {"type": "again"})
        assert await receive(layer, channel) == {"type": "again"}
    finally:
        await layer.close()
        nodes.stop()


def first_slot_of(nodes: RedisClusterProcesses, port: int) -> int:
    """The lowest slot the primary on `port` serves (redis-cli reshard moves it)."""
    ranges = nodes.node(port).execute_command("CLUSTER", "SLOTS")
    return min(int(r[0]) for r in ranges if int(r[2][1]) == port)


async def test_messages_flow_while_their_slot_migrates(redis_prefix):
    nodes = RedisClusterProcesses().start()
    layer = make_layer(nodes, redis_prefix, blocking_timeout=1, socket_timeout=5)
    try:
        source, target = nodes.primary_ports()[:2]
        slot = first_slot_of(nodes, source)
        channel = next(
            name
            for name in (f"moving-{n}" for n in range(200_000))
            if key_slot(layer._channel_key(name)) == slot
        )
        for n in range(50):
            await layer.send(channel, {"type": "m", "n": n})
        got: list[int] = []

        async def consume() -> None:
            while len(got) < 100:
                got.append((await layer.receive(channel))["n"])
                await asyncio.sleep(0.02)  # still popping while the slot moves

        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(nodes.reshard, source, target, 1)
        key = layer._channel_key(channel).decode()
        assert nodes.client().get_node_from_key(key).port == target
        for n in range(50, 100):
            await layer.send(channel, {"type": "m", "n": n})
        await asyncio.wait_for(consumer, 30)
        assert got == list(range(100))
    finally:
        await layer.close()
        nodes.stop()
