"""realtime.cluster_layer against a real Redis Cluster (3 primaries, 3 replicas)."""

import asyncio
import logging
import time

import pytest
from channels.exceptions import ChannelFull
from redis.crc import key_slot

from realtime.cluster_layer import RedisClusterChannelLayer
from testing.redis_cluster import RedisClusterProcesses

pytestmark = pytest.mark.redis

# Long enough for a pop on a loaded 2-core machine, short enough to fail fast.
WAIT = 5.0
# How long a receive that must get nothing is given.
QUIET = 0.5


def make_layer(nodes: RedisClusterProcesses, prefix: str, **config):
    """A layer on `nodes` under the test's prefix."""
    return RedisClusterChannelLayer(
        url=nodes.url, nodes=nodes.nodes.split(","), prefix=f"{prefix}:asgi", **config
    )


@pytest.fixture
async def layers(redis_cluster, redis_prefix):
    """make(**config): layers on the session cluster, flushed and closed at the end."""
    made: list[RedisClusterChannelLayer] = []

    def make(**config) -> RedisClusterChannelLayer:
        made.append(make_layer(redis_cluster, redis_prefix, **config))
        return made[-1]

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()
    redis_cluster.flush(redis_prefix)


async def receive(layer, channel, timeout=WAIT):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_on(layer, channel) -> bool:
    """True if no message arrives on the channel for QUIET seconds."""
    try:
        await asyncio.wait_for(layer.receive(channel), QUIET)
    except TimeoutError:
        return True
    return False


async def test_send_receive_in_order(layers):
    layer = layers()
    for n in range(3):
        await layer.send("shared-channel", {"type": "test.message", "n": n})
    got = [(await receive(layer, "shared-channel"))["n"] for _ in range(3)]
    assert got == [0, 1, 2]


async def test_process_local_channels_share_a_key_and_are_demultiplexed(
    layers, redis_cluster, redis_prefix
):
    layer, other = layers(), layers()
    channels = [await layer.new_channel(prefix="rt-instance.") for _ in range(5)]
    assert len({layer.non_local_name(c) for c in channels}) == 1
    # Sent by another layer instance, interleaved, before anyone receives: one
    # batch pop takes them all and each must reach its own channel, in order.
    for n in range(4):
        for i, channel in enumerate(channels):
            await other.send(channel, {"type": "m", "i": i, "n": n})
    keys = redis_cluster.keys_per_primary(f"{redis_prefix}:asgi:ch:*")
    assert sum(keys.values()) == 1
    for i, channel in reversed(list(enumerate(channels))):
        got = [await receive(layer, channel) for _ in range(4)]
        assert got == [{"type": "m", "i": i, "n": n} for n in range(4)]


async def test_receive_on_another_layers_local_channel_is_refused(layers):
    layer, other = layers(), layers()
    channel = await other.new_channel()
    with pytest.raises(AssertionError):
        await layer.receive(channel)
    with pytest.raises(TypeError):
        await layer.send("=+135!", {"type": "x"})


async def test_capacity_raises_channel_full(layers):
    layer = layers(capacity=3, channel_capacity={"tiny*": 1})
    for _ in range(3):
        await layer.send("roomy", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("roomy", {"type": "m"})
    await layer.send("tiny-one", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("tiny-one", {"type": "m"})
    # Receiving makes room again.
    await receive(layer, "roomy")
    await layer.send("roomy", {"type": "m"})


async def test_an_expired_message_is_never_delivered(layers):
    layer = layers(expiry=1, capacity=2)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "old"})
    await layer.send("shared", {"type": "old"})
    await layer.send("shared", {"type": "old"})
    await asyncio.sleep(1.2)
    await layer.send(channel, {"type": "new"})
    # A full channel whose messages all expired takes new ones.
    await layer.send("shared", {"type": "new"})
    assert (await receive(layer, channel))["type"] == "new"
    assert (await receive(layer, "shared"))["type"] == "new"
    assert await nothing_on(layer, "shared")


async def test_an_expired_buffered_message_is_dropped(layers):
    layer = layers(expiry=1)
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.send(first, {"type": "a"})
    await layer.send(second, {"type": "b"})
    # The pop for `second` buffers `first`'s message too; it expires there.
    assert (await receive(layer, second))["type"] == "b"
    await asyncio.sleep(1.2)
    assert await nothing_on(layer, first)


async def test_groups_add_discard_send(layers):
    layer = layers()
    a, b, c = [await layer.new_channel(prefix=f"member-{n}") for n in "abc"]
    for channel in (a, b, c, "shared-member"):
        await layer.group_add("room-1", channel)
    await layer.group_discard("room-1", b)
    await layer.group_send("room-1", {"type": "room.emit", "x": 1})
    for channel in (a, c, "shared-member"):
        assert await receive(layer, channel) == {"type": "room.emit", "x": 1}
    assert await nothing_on(layer, b)


async def test_group_membership_expires(layers):
    layer = layers(group_expiry=1)
    stale, renewed = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", stale)
    await layer.group_add("room", renewed)
    await asyncio.sleep(0.6)
    await layer.group_add("room", renewed)
    await asyncio.sleep(0.6)
    await layer.group_send("room", {"type": "m"})
    assert (await receive(layer, renewed))["type"] == "m"
    assert await nothing_on(layer, stale)


async def test_group_send_skips_full_channels(layers, caplog):
    layer = layers(capacity=2)
    full, roomy = await layer.new_channel(), await layer.new_channel(prefix="roomy")
    await layer.group_add("room", full)
    await layer.group_add("room", roomy)
    await layer.send(full, {"type": "m0"})
    with caplog.at_level(logging.INFO, logger="realtime.cluster_layer.layer"):
        for n in (1, 2):
            await layer.group_send("room", {"type": f"m{n}"})
    assert [(await receive(layer, roomy))["type"] for _ in range(2)] == ["m1", "m2"]
    assert [(await receive(layer, full))["type"] for _ in range(2)] == ["m0", "m1"]
    assert await nothing_on(layer, full)
    assert "1 of 2 channels over capacity in group room" in caplog.text


async def test_flush_deletes_every_key_of_the_prefix_only(
    layers, redis_cluster, redis_prefix
):
    layer = layers()
    bystander = make_layer(redis_cluster, f"{redis_prefix}-other")
    for n in range(30):
        await layer.send(f"chan-{n}", {"type": "m"})
        await layer.group_add(f"group-{n}", f"chan-{n}")
    await bystander.send("kept", {"type": "m"})
    before = redis_cluster.keys_per_primary(f"{redis_prefix}:asgi:*")
    assert sum(before.values()) == 60
    await layer.flush()
    assert sum(redis_cluster.keys_per_primary(f"{redis_prefix}:asgi:*").values()) == 0
    assert (await receive(bystander, "kept"))["type"] == "m"
    await bystander.close()


async def test_channels_of_many_processes_spread_over_every_primary(
    layers, redis_cluster, redis_prefix
):
    # One layer per "process", each with its instance channel, all in one group:
    # the group_send pipeline reaches every primary and no command is CROSSSLOT.
    instances = [layers() for _ in range(30)]
    channels = [await i.new_channel(prefix="rt-instance.") for i in instances]
    for channel in channels:
        await instances[0].group_add("everyone", channel)
    await instances[0].group_send("everyone", {"type": "hello"})
    per_primary = redis_cluster.keys_per_primary(f"{redis_prefix}:asgi:ch:*")
    assert len(per_primary) == 3 and all(n > 0 for n in per_primary.values())
    assert sum(per_primary.values()) == 30
    for instance, channel in zip(instances, channels, strict=True):
        assert await receive(instance, channel) == {"type": "hello"}


async def test_a_message_popped_for_a_cancelled_receive_goes_to_the_next(
    layers, redis_cluster, redis_prefix
):
    layer = layers()
    channel = await layer.new_channel()
    waiting = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.3)  # the reader now blocks in BLMPOP
    waiting.cancel()
    # The pop already under way takes this message after its receive is gone.
    await layer.send(channel, {"type": "late"})
    deadline = time.monotonic() + WAIT
    while sum(redis_cluster.keys_per_primary(f"{redis_prefix}:asgi:ch:*").values()):
        assert time.monotonic() < deadline, "the reader never popped the message"
        await asyncio.sleep(0.05)
    assert await receive(layer, channel) == {"type": "late"}


async def test_receives_cancelled_at_random_lose_nothing(layers):
    layer = layers(capacity=1000)
    channel = await layer.new_channel()
    sent, got = 200, []
    for n in range(sent):
        await layer.send(channel, {"type": "m", "n": n})
        task = asyncio.create_task(layer.receive(channel))
        await asyncio.sleep(n % 7 * 0.0005)
        task.cancel()
        try:
            got.append((await task)["n"])  # it completed before the cancel
        except asyncio.CancelledError:
            pass
    try:
        while True:
            got.append((await asyncio.wait_for(layer.receive(channel), 1.0))["n"])
    except TimeoutError:
        pass
    assert got == list(range(sent))


@pytest.mark.cluster
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


@pytest.mark.cluster
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
