"""Two real server processes sharing the real Redis, with real WebSocket clients."""

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async

from realtime import emit
from testing.clients import RealSocket, SocketClient
from testing.cluster import INSTANCE_TTL, MAX_FRAME_BYTES, http_post
from testing.factories import token_for

# The cross-instance suite runs on one Redis and again on a Redis Cluster.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.also_on_redis_cluster,
    pytest.mark.django_db(transaction=True),
]


async def test_user_on_one_instance_sees_user_on_the_other_online(cluster, people):
    one, two = cluster
    alice = await SocketClient.open(RealSocket(one.ws), people["alice"], join=True)
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"])
    try:
        ids = (await alice.call("user-list"))["data"]["user_ids"]
        assert ids == sorted([people["alice"].id, people["bob"].id])
        # The coalesced presence broadcast reaches alice with bob in it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if people["bob"].id in (await alice.event("user-list"))["user_ids"]:
                break
        else:
            pytest.fail("no presence broadcast with bob")
    finally:
        await alice.close()
        await bob.close()


async def test_room_emit_from_server_code_on_one_reaches_session_on_the_other(
    cluster, people
):
    one, two = cluster
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"])
    admin_token = token_for(people["admin"])
    try:
        status, body = http_post(
            f"{one.http}/api/realtime/emit/",
            {"user_id": people["bob"].id, "event": "hello", "data": {"from": "one"}},
            admin_token,
        )
        assert (status, body) == (202, {"sent": True})
        assert await bob.event("hello") == {"from": "one"}
        # Entering a room for a user on another instance, then emitting to the room.
        await emit.room_enter_for_users(room="channel:42", user_ids=[people["bob"].id])
        await _until_async(
            lambda: emit.room_user_ids(room="channel:42"), [people["bob"].id]
        )
        status, _ = http_post(
            f"{one.http}/api/realtime/emit/",
            {"room": "channel:42", "event": "events:channel", "data": {"x": 1}},
            admin_token,
        )
        assert status == 202
        assert await bob.event("events:channel") == {"x": 1}
        # And to one session by its id.
        status, _ = http_post(
            f"{one.http}/api/realtime/emit/",
            {"sid": bob.sid, "event": "direct", "data": 3},
            admin_token,
        )
        assert status == 202
        assert await bob.event("direct") == 3
    finally:
        await bob.close()


async def test_killed_instance_leaves_presence_within_two_ttls(cluster, people):
    one, two = cluster
    alice = await SocketClient.open(RealSocket(one.ws), people["alice"])
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"])
    await bob.call("user-join", {})
    assert people["bob"].id in (await alice.call("user-list"))["data"]["user_ids"]
    killed_at = time.monotonic()
    two.kill()
    try:
        while people["bob"].id in (await alice.call("user-list"))["data"]["user_ids"]:
            assert time.monotonic() - killed_at <= 2 * INSTANCE_TTL, "bob still online"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - killed_at
        assert elapsed <= 2 * INSTANCE_TTL
        assert await emit.room_sessions(room=f"user:{people['bob'].id}") == []
        assert await emit.room_sessions(room="presence") == []
    finally:
        await alice.close()


# What the client sees for a frame over MAX_FRAME_BYTES: uvicorn closes with 1009;
# daphne's autobahn drops the TCP connection at its limit (no close frame: 1006).
OVERSIZE_CLOSE = {"uvicorn": 1009, "daphne": None}


async def test_oversized_frame_is_refused_by_both_servers(cluster, people):
    for server in cluster:
        client = await SocketClient.open(RealSocket(server.ws), people["alice"])
        big = {"event": "heartbeat", "data": {"x": "a" * MAX_FRAME_BYTES}}
        await client.send_raw(json.dumps(big))
        assert await client.closed_code() == OVERSIZE_CLOSE[server.server], server
        # The server and other sockets are unharmed.
        other = await SocketClient.open(RealSocket(server.ws), people["bob"])
        assert "data" in await other.call("user-list")
        await other.close()


async def test_graceful_stop_removes_sessions_at_once(cluster, people):
    one, two = cluster
    alice = await SocketClient.open(RealSocket(one.ws), people["alice"])
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"])
    assert people["bob"].id in (await alice.call("user-list"))["data"]["user_ids"]
    # uvicorn re-raises SIGTERM after a clean shutdown; -9 would mean it was killed.
    assert two.terminate() in (0, -15)
    assert await bob.closed_code() in (1001, 1012)  # going away / service restart
    # No reaping involved: well under one INSTANCE_TTL.
    assert (await alice.call("user-list"))["data"]["user_ids"] == [people["alice"].id]
    await alice.close()


async def test_deactivating_a_user_closes_their_sockets_on_both_instances(
    cluster, people
):
    one, two = cluster
    on_one = await SocketClient.open(RealSocket(one.ws), people["alice"])
    on_two = await SocketClient.open(RealSocket(two.ws), people["alice"])
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"])

    def deactivate():
        user = people["alice"]
        user.is_active = False
        user.save()

    start = time.monotonic()
    await database_sync_to_async(deactivate)()
    codes = await asyncio.gather(on_one.closed_code(), on_two.closed_code())
    assert codes == [4401, 4401]
    assert time.monotonic() - start < 1.0
    assert (await bob.call("user-list"))["data"]["user_ids"] == [people["bob"].id]
    await bob.close()


async def _until_async(fetch, expected, timeout=3.0):
    deadline = time.monotonic() + timeout
    while (value := await fetch()) != expected:
        assert time.monotonic() < deadline, value
        await asyncio.sleep(0.05)
