"""Channel events on sockets: rooms, live membership, typing, read receipts."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from channels_app import services
from channels_app.models import ChannelMember
from testing.factories import users_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def trio():
    return await users_create("alice", "bob", "carol")


async def make_channel(owner, members):
    return await database_sync_to_async(services.channel_create)(
        owner=owner, name="general", kind="group", member_ids=[m.id for m in members]
    )


async def post(author, channel, content):
    return await database_sync_to_async(services.message_post)(
        author=author, channel_id=channel.id, content=content
    )


async def channel_events(client, kind: str, timeout: float = 2) -> dict:
    while True:
        data = await client.event("events:channel", timeout)
        if data["data"]["type"] == kind:
            return data


async def no_channel_event(client, wait: float = 0.4) -> bool:
    """True if no events:channel frame arrives within `wait` (others are skipped)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while loop.time() < end:
        if await client.nothing(0.05):
            continue
        if (await client.recv()).get("event") == "events:channel":
            return False
    return True


async def test_user_join_enters_channel_rooms_and_members_get_messages(
    backend, ws, trio
):
    alice, bob, carol = trio
    channel = await make_channel(alice, [bob])
    b, c = await ws(bob, join=True), await ws(carol, join=True)
    message = await post(alice, channel, "hello team")
    event = await channel_events(b, "message")
    assert event["channel_id"] == channel.id and event["message_id"] == message.id
    assert event["user"] == {"id": alice.id, "name": "Alice"}
    assert event["data"]["data"]["content"] == "hello team"
    assert await no_channel_event(c)


async def test_join_channels_event(backend, ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    b = await ws(bob)
    reply = await b.call("join-channels")
    assert reply["data"] == {"channel_ids": [channel.id]}


async def test_creation_is_announced_and_rooms_entered_live(backend, ws, trio):
    alice, bob, _ = trio
    b = await ws(bob, join=True)
    channel = await make_channel(alice, [bob])
    created = await b.event("channel:created")
    assert created["id"] == channel.id
    await asyncio.sleep(0.2)  # the room.enter reaches bob's instance
    await post(alice, channel, "first")
    assert (await channel_events(b, "message"))["data"]["data"]["content"] == "first"


async def test_added_member_hears_at_once_removed_member_nothing(backend, ws, trio):
    alice, bob, carol = trio
    channel = await make_channel(alice, [bob])
    c = await ws(carol, join=True)
    await database_sync_to_async(services.channel_member_add)(
        actor_id=alice.id, channel_id=channel.id, user_id=carol.id
    )
    await c.event("channel:created")
    await asyncio.sleep(0.2)
    await post(alice, channel, "welcome carol")
    assert (await channel_events(c, "message"))["data"]["data"][
        "content"
    ] == "welcome carol"
    await database_sync_to_async(services.channel_member_remove)(
        actor_id=alice.id, channel_id=channel.id, user_id=carol.id
    )
    await asyncio.sleep(0.2)
    await post(alice, channel, "carol is gone")
    assert await no_channel_event(c)
    typing = await c.call(
        "events:channel", {"channel_id": channel.id, "data": {"type": "typing"}}
    )
    assert typing["error"]["code"] == "forbidden"


async def test_typing_is_relayed_with_the_real_user_and_rate_limited(backend, ws, trio):
    alice, bob, carol = trio
    channel = await make_channel(alice, [bob])
    a, b = await ws(alice, join=True), await ws(bob, join=True)
    spoof = {"id": carol.id, "name": "Carol"}
    frame = {
        "channel_id": channel.id,
        "data": {"type": "typing", "data": {"typing": True}},
        "user": spoof,
    }
    assert (await a.call("events:channel", frame))["data"] is None
    event = await channel_events(b, "typing")
    assert event["user"] == {"id": alice.id, "name": "Alice"}
    assert event["data"]["data"] == {"typing": True}
    again = await a.call("events:channel", frame)
    assert again["error"]["code"] == "rate_limited"
    assert await no_channel_event(b)
    assert await no_channel_event(a, 0.1)  # the sender does not hear its own typing
    await asyncio.sleep(0.5)
    assert "data" in await a.call("events:channel", frame)


async def test_last_read_at_updates_only_the_senders_membership(backend, ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    b = await ws(bob, join=True)
    reply = await b.call(
        "events:channel", {"channel_id": channel.id, "data": {"type": "last_read_at"}}
    )
    assert "last_read_at" in reply["data"]
    rows = await database_sync_to_async(
        lambda: dict(ChannelMember.objects.values_list("user_id", "last_read_at"))
    )()
    assert rows[bob.id] is not None and rows[alice.id] is None


@pytest.mark.parametrize(
    "data, code",
    [
        ({}, "bad_request"),
        ({"channel_id": 5, "data": {"type": "typing"}}, "bad_request"),
        ({"channel_id": "x", "data": {"type": "shout"}}, "bad_request"),
        ({"channel_id": "x", "data": "typing"}, "bad_request"),
        ({"channel_id": "x", "data": {"type": "typing"}, "extra": 1}, "bad_request"),
        ({"channel_id": "no-such-channel", "data": {"type": "typing"}}, "forbidden"),
        (
            {"channel_id": "no-such-channel", "data": {"type": "last_read_at"}},
            "not_found",
        ),
    ],
)
async def test_bad_channel_events(ws, trio, data, code):
    alice = trio[0]
    a = await ws(alice, join=True)
    reply = await a.call("events:channel", data)
    assert reply["error"]["code"] == code
    assert "data" in await a.call("user-list")
