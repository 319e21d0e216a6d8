"""realtime.cluster_layer against a real Redis Cluster (3 primaries, 3 replicas)."""

import asyncio
import logging
import time
import traceback
from importlib import metadata

import pytest
from channels.exceptions import ChannelFull

import realtime.cluster_layer.scripts as scripts
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


async def test_buffers_of_channels_nobody_receives_are_dropped(layers):
    layer = layers(expiry=1)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    await layer.send(gone, {"type": "never.received"})
    await layer.send(alive, {"type": "m"})
    assert (await receive(layer, alive))["type"] == "m"
    assert gone in layer.inbox.buffers  # popped with alive's message
    await asyncio.sleep(1.2)
    await layer.send(alive, {"type": "m"})
    assert (await receive(layer, alive))["type"] == "m"
    assert gone not in layer.inbox.buffers


def test_a_prefix_with_braces_is_refused(redis_cluster):
    with pytest.raises(ValueError, match="braces"):
        make_layer(redis_cluster, "rt{x}")


async def test_scripts_the_nodes_lost_are_loaded_again(layers, redis_cluster):
    layer = layers()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await layer.group_add("room", "shared-member")
    # As a promoted replica or a restarted node that never loaded them.
    for port in redis_cluster.primary_ports():
        redis_cluster.node(port).script_flush()
    await layer.send(channel, {"type": "direct"})
    for port in redis_cluster.primary_ports():
        redis_cluster.node(port).script_flush()
        # Only the members script: the send scripts of the pipeline meet NOSCRIPT.
        redis_cluster.node(port).script_load(scripts.GROUP_MEMBERS.source)
    await layer.group_send("room", {"type": "group"})
    assert [(await receive(layer, channel))["type"] for _ in range(2)] == [
        "direct",
        "group",
    ]
    assert (await receive(layer, "shared-member"))["type"] == "group"


async def test_clients_and_connections_do_not_look_up_redis_py_version(
    layers, monkeypatch
):
    looked_up: list[str] = []
    real = metadata.version

    def version(name: str) -> str:
        if name == "redis":  # other packages may look theirs up meanwhile
            looked_up.append("".join(traceback.format_stack(limit=6)))
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    layer = layers()
    # Many at once: the pools open many connections on every primary.
    await asyncio.gather(*(layer.send(f"c{n}", {"type": "m"}) for n in range(200)))
    assert looked_up == []


async def test_no_command_table_or_getkeys_round_trips(layers, redis_cluster):
    ports = redis_cluster.live_ports()
    for port in ports:
        redis_cluster.node(port).config_resetstat()
    layer = layers()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m"})
    assert (await receive(layer, channel))["type"] == "m"
    await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "g"})
    await layer.group_discard("room", channel)
    assert (await receive(layer, channel))["type"] == "g"
    await layer.flush()
    stats = {}
    for port in ports:
        stats.update(redis_cluster.node(port).info("commandstats"))
    assert "cmdstat_blmpop" in stats  # what was counted is this test's
    assert not [name for name in stats if name.startswith("cmdstat_command")]


def test_config_takes_credentials_from_the_url_and_nodes_as_host_port():
    layer = RedisClusterChannelLayer(
        url="redis://layer:p%40ss@10.0.0.1:7000", nodes=["10.0.0.2:7001"]
    )
    options = layer.clients.options
    assert (options["username"], options["password"]) == ("layer", "p@ss")
    assert [n.name for n in options["startup_nodes"]] == [
        "10.0.0.1:7000",
        "10.0.0.2:7001",
    ]
    with pytest.raises(ValueError, match="must exceed"):
        RedisClusterChannelLayer(url="redis://h:1", socket_timeout=5)
