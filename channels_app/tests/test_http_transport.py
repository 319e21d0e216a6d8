"""Channels over the HTTP transport (docs/protocol.md §10) on two real server
processes: a user streaming over HTTP, POSTs landing on the other instance, and a
user on a WebSocket, members of the same channel."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from channels_app.models import ChannelMember
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_request
from testing.factories import token_for
from testing.http_transport import RealHttp

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# How long a room.enter takes to reach the member's instance, at most (the same
# wait as channels_app/tests/test_cluster.py).
ROOM_ENTER = 0.3


async def over_http(server, other, user) -> SocketClient:
    """A joined session streaming from `server`, its POSTs to `other` and `server`
    in turn."""
    transport = RealHttp(server.http, post_to=[other.http, server.http])
    return await SocketClient.open(transport, user, join=True)


async def rest(server, user, method: str, path: str, body=None) -> dict:
    """A REST call as `user` that must succeed; its JSON body."""
    data = None if body is None else json.dumps(body).encode()
    status, reply = await asyncio.to_thread(
        http_request, f"{server.http}/api{path}", token_for(user), data, method
    )
    assert status in (200, 201, 204), (status, reply)
    return reply


async def channel_event(client, kind: str, timeout: float = 5) -> dict:
    """The next events:channel of `kind` (others are skipped)."""
    while True:
        data = await client.event("events:channel", timeout)
        if data["data"]["type"] == kind:
            return data


async def test_messages_and_their_changes_reach_both_transports(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    channel = await rest(
        two, bob, "POST", "/channels/", {"name": "team", "member_ids": [alice.id]}
    )
    cid = channel["id"]
    # Connected after the channel was made: user-join puts the session in its room.
    web = await over_http(one, two, alice)
    tab = await SocketClient.open(RealSocket(two.ws), bob, join=True)
    try:
        assert (await web.call("join-channels"))["data"] == {"channel_ids": [cid]}
        sent = await rest(
            one, bob, "POST", f"/channels/{cid}/messages/", {"content": "hi"}
        )
        reply = await rest(
            two, alice, "POST", f"/channels/{cid}/messages/", {"content": "yo"}
        )
        # Each member hears both, in order, with who wrote them.
        for client in (web, tab):
            heard = [await channel_event(client, "message") for _ in "12"]
            assert [
                (h["message_id"], h["user"]["id"], h["data"]["data"]["content"])
                for h in heard
            ] == [(sent["id"], bob.id, "hi"), (reply["id"], alice.id, "yo")]
        # Bob's edit, reaction and delete of his message, as both users hear them.
        path = f"/channels/{cid}/messages/{sent['id']}/"
        await rest(two, bob, "PATCH", path, {"content": "hi all"})
        await rest(one, alice, "POST", f"{path}reactions/", {"name": "wave"})
        await rest(two, bob, "DELETE", path)
        for client in (web, tab):
            update = await channel_event(client, "message:update")
            assert update["data"]["data"]["content"] == "hi all"
            reaction = await channel_event(client, "message:reaction:add")
            assert reaction["data"]["data"]["name"] == "wave"
            assert reaction["user"]["id"] == alice.id
            deleted = await channel_event(client, "message:delete")
            assert deleted["message_id"] == sent["id"]
    finally:
        await web.close()
        await tab.close()


async def test_creation_typing_and_read_receipts_between_the_transports(
    cluster, people
):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    web = await over_http(two, one, alice)
    tab = await SocketClient.open(RealSocket(one.ws), bob, join=True)
    try:
        channel = await rest(
            one, bob, "POST", "/channels/", {"name": "ops", "member_ids": [alice.id]}
        )
        cid = channel["id"]
        assert (await web.event("channel:created", 5))["id"] == cid
        await asyncio.sleep(ROOM_ENTER)
        # Typing each way: relayed as the sender, its end too.
        for typist, watcher, who in ((web, tab, alice), (tab, web, bob)):
            for flag in (True, False):
                typing = {
                    "channel_id": cid,
                    "data": {"type": "typing", "data": {"typing": flag}},
                }
                assert (await typist.call("events:channel", typing))["data"] is None
                relayed = await channel_event(watcher, "typing")
                assert relayed["user"]["id"] == who.id
                assert relayed["data"]["data"] == {"typing": flag}
        # A read receipt over HTTP moves only alice's membership.
        read = {"channel_id": cid, "data": {"type": "last_read_at"}}
        reply = await web.call("events:channel", read)
        assert "last_read_at" in reply["data"], reply
        rows = await database_sync_to_async(
            lambda: dict(
                ChannelMember.objects.filter(channel_id=cid).values_list(
                    "user_id", "last_read_at"
                )
            )
        )()
        assert rows[alice.id] is not None and rows[bob.id] is None
    finally:
        await web.close()
        await tab.close()
