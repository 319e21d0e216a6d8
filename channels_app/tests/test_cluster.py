"""Channel membership taking effect live across two real server processes."""

import asyncio

import pytest

from testing.clients import RealSocket, SocketClient
from testing.cluster import http_post, http_request
from testing.factories import token_for

# The cross-instance suite runs on one Redis and again on a Redis Cluster.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.also_on_redis_cluster,
    pytest.mark.django_db(transaction=True),
]


async def next_channel_event(client, kind, timeout=5):
    while True:
        data = await client.event("events:channel", timeout=timeout)
        if data["data"]["type"] == kind:
            return data


async def no_channel_event(client, wait=0.6) -> bool:
    try:
        while True:
            frame = await client.recv(wait)
            if frame.get("event") == "events:channel":
                return False
    except TimeoutError:
        return True


async def test_membership_changes_take_effect_live_across_instances(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    a_token, b_token = token_for(alice), token_for(bob)
    status, channel = await asyncio.to_thread(
        http_post, f"{one.http}/api/channels/", {"name": "team"}, a_token
    )
    assert status == 201
    cid = channel["id"]
    bob_tab = await SocketClient.open(RealSocket(two.ws), bob, join=True)

    # Added on instance one: bob's socket on instance two enters the room at once.
    status, _ = await asyncio.to_thread(
        http_post,
        f"{one.http}/api/channels/{cid}/members/",
        {"user_id": bob.id},
        a_token,
    )
    assert status == 201
    assert (await bob_tab.event("channel:created"))["id"] == cid
    await asyncio.sleep(0.3)
    await asyncio.to_thread(
        http_post,
        f"{one.http}/api/channels/{cid}/messages/",
        {"content": "hi bob"},
        a_token,
    )
    event = await next_channel_event(bob_tab, "message")
    assert event["data"]["data"]["content"] == "hi bob"
    assert event["user"]["id"] == alice.id

    # Bob's typing reaches alice on the other instance, as bob whatever he claims.
    alice_tab = await SocketClient.open(RealSocket(one.ws), alice, join=True)
    typing = {"channel_id": cid, "data": {"type": "typing"}, "user": {"id": alice.id}}
    assert (await bob_tab.call("events:channel", typing))["data"] is None
    relayed = await next_channel_event(alice_tab, "typing")
    assert relayed["user"]["id"] == bob.id

    # Removed on instance one: bob hears nothing more and can send nothing.
    status, _ = await asyncio.to_thread(
        http_request,
        f"{one.http}/api/channels/{cid}/members/{bob.id}/",
        a_token,
        None,
        "DELETE",
    )
    assert status == 204
    await asyncio.sleep(0.3)
    await asyncio.to_thread(
        http_post,
        f"{one.http}/api/channels/{cid}/messages/",
        {"content": "secret"},
        a_token,
    )
    assert await no_channel_event(bob_tab)
    await asyncio.sleep(0.5)  # past the typing rate limit: the refusal is membership
    refused = await bob_tab.call("events:channel", typing)
    assert refused["error"]["code"] == "forbidden"
    status, body = await asyncio.to_thread(
        http_post,
        f"{two.http}/api/channels/{cid}/messages/",
        {"content": "hey"},
        b_token,
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
    await bob_tab.close()
    await alice_tab.close()
