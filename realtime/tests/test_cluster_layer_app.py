"""The app on the cluster layer: the hub's inbox and the outbox over a real Redis
Cluster (the state store stays on the single test Redis)."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from django.conf import settings as django_settings

from realtime.cluster_layer import RedisClusterChannelLayer
from realtime.hub import get_hub
from realtime.outbox import get_outbox
from realtime.state import get_state
from realtime.tests.test_hub import connected

pytestmark = pytest.mark.redis


@pytest.fixture
def layer_config(redis_settings, redis_cluster, redis_prefix) -> dict:
    """CHANNEL_LAYERS as the settings are to wire it, on the session cluster."""
    config = {
        "url": redis_cluster.url,
        "nodes": redis_cluster.nodes.split(","),
        "prefix": f"{redis_prefix}:asgi",
        "capacity": django_settings.LAYER_CAPACITY,
        "socket_timeout": django_settings.LAYER_SOCKET_TIMEOUT,
        "max_connections": django_settings.REDIS_MAX_CONNECTIONS,
    }
    redis_settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.cluster_layer.RedisClusterChannelLayer",
            "CONFIG": config,
        }
    }
    yield config
    redis_cluster.flush(redis_prefix)


def room_emit(room: str, n: int) -> dict:
    return {"type": "room.emit", "room": room, "frame": json.dumps({"n": n})}


async def test_the_hub_receives_what_another_process_sends(layer_config):
    hub = await get_hub()
    assert isinstance(get_channel_layer(), RedisClusterChannelLayer)
    session, socket = await connected(hub, 1)
    await hub.join(session, "room:a")
    other = RedisClusterChannelLayer(**layer_config)  # another process's layer
    try:
        for n in range(0, 30, 3):
            items = [room_emit("room:a", i) for i in range(n, n + 3)]
            await other.send(hub.channel, {"type": "batch", "items": items})
        for _ in range(100):
            if len(socket.frames) == 30:
                break
            await asyncio.sleep(0.05)
        assert [f["n"] for f in socket.frames] == list(range(30))
    finally:
        await other.close()


async def test_the_outbox_sends_other_instances_their_batches(layer_config):
    await get_hub()
    layer = get_channel_layer()
    other = await layer.new_channel(prefix="rt-instance.")
    await get_state().instance_refresh(instance_id="other", channel=other, ttl=30)
    await get_state().route_add(room="room:b", channel=other, instance_id="other")
    await asyncio.gather(
        *(get_outbox().send("room:b", room_emit("room:b", i)) for i in range(50))
    )
    items: list[dict] = []
    while len(items) < 50:
        items += (await asyncio.wait_for(layer.receive(other), 5))["items"]
    assert [json.loads(i["frame"])["n"] for i in items] == list(range(50))
