"""The core's events over the HTTP transport (docs/protocol.md §10) on two real server
processes, beside a WebSocket session: presence, heartbeat, history, refresh and
usage, with the HTTP session's POSTs landing on the other instance."""

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from realtime import emit
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.models import User
from realtime.rooms import user_room
from testing.clients import RealSocket, SocketClient
from testing.http_transport import RealHttp

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# Lifetime of a short token: exp is whole seconds, so it lapses 1-2 s after it was
# made.
SHORT = 2


def over_http(server, other) -> SocketClient:
    """A client streaming from `server`, POSTing to `other` and `server` in turn."""
    return SocketClient(RealHttp(server.http, post_to=[other.http, server.http]))


async def opened(server, other, user, **connect) -> SocketClient:
    """An HTTP session of `user` (see over_http), connected."""
    client = over_http(server, other)
    assert await client.transport.open()
    await client.connect(user, **connect)
    return client


def access_token(user, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def online_seen(client: SocketClient, user_id: int, present: bool) -> None:
    """Wait for a presence broadcast with `user_id` in it (or out of it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ids = (await client.event("user-list", timeout=5))["user_ids"]
        if (user_id in ids) == present:
            return
    pytest.fail(f"no user-list with user {user_id} {'in' if present else 'out'}")


async def test_presence_follows_the_http_stream(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    tab = await SocketClient.open(RealSocket(two.ws), bob, join=True)
    web = await opened(one, two, alice, join=True)
    try:
        await online_seen(tab, alice.id, True)
        ids = (await web.call("user-list"))["data"]["user_ids"]
        assert ids == sorted([alice.id, bob.id])
        # The stream is the session: dropping it takes alice offline.
        await web.abort()
        await online_seen(tab, alice.id, False)
        assert (await tab.call("user-list"))["data"]["user_ids"] == [bob.id]
    finally:
        await web.close()
        await tab.close()


async def test_heartbeat_and_history_over_http(cluster, people):
    one, two = cluster
    alice = people["alice"]
    web = await opened(two, one, alice)
    try:
        assert await web.call("heartbeat") == {"ack": 1, "data": None}
        row = await database_sync_to_async(User.objects.get)(pk=alice.pk)
        assert row.last_active_at is not None
        room = user_room(alice.id)
        positions = [
            await emit.user_emit(user_id=alice.id, event="tick", data={"n": n})
            for n in range(3)
        ]
        ticks = [await web.event("tick", 5) for _ in range(3)]
        assert ticks == [{"n": 0}, {"n": 1}, {"n": 2}]
        first = positions[0]
        reply = await web.call(
            "history", {"room": room, "epoch": first.epoch, "offset": first.offset}
        )
        assert reply["data"]["recovered"] is True, reply
        assert reply["data"]["events"] == [
            {"event": "tick", "data": {"n": n}, "offset": positions[n].offset}
            for n in (1, 2)
        ]
    finally:
        await web.close()


async def test_refresh_over_http_keeps_the_stream_past_its_first_expiry(
    cluster, people
):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    keeper = over_http(one, two)
    lapser = over_http(two, one)
    try:
        for client, user in ((keeper, alice), (lapser, bob)):
            assert await client.transport.open()
            await client.send(
                {
                    "event": "connect",
                    "data": {"token": access_token(user, SHORT)},
                    "ack": 0,
                }
            )
            assert "data" in await client.recv(), "connect refused"
        refreshed = await keeper.call("refresh", {"token": access_token(alice, 600)})
        assert refreshed["data"]["exp"] > time.time() + 60, refreshed
        # The one that did not refresh is told why, then closed with 4401.
        assert await lapser.event("disconnect", 5) == {"reason": "token expired"}
        assert await lapser.closed_code(5) == CLOSE_UNAUTHORIZED
        assert "data" in await keeper.call("heartbeat")
    finally:
        await keeper.close()
        await lapser.close()


@pytest.mark.cluster_env(USAGE_TTL=30, USAGE_INTERVAL=0.3)
async def test_usage_marked_over_http_is_broadcast_to_a_websocket(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    web = await opened(one, two, alice, join=True)
    tab = await SocketClient.open(RealSocket(two.ws), bob, join=True)
    try:
        assert (await web.call("usage", {"model": "gpt-h"}))["data"] is None
        broadcast = await asyncio.wait_for(tab.event("usage", 5), 5)
        assert broadcast == {"models": ["gpt-h"]}
        assert (await web.call("usage"))["data"] == {"models": ["gpt-h"]}
        # The mark leaves with the HTTP session, well before its TTL.
        await web.close()
        assert await asyncio.wait_for(tab.event("usage", 5), 5) == {"models": []}
    finally:
        await web.close()
        await tab.close()
