"""Channels in Open WebUI's dialect: every event in its `events:channel` envelope, its
client frames as it sends them, typing timed out by the server, replies, reactions
and mute; realtime sockets beside them keep their own shapes."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from channels_app import services
from channels_app.models import ChannelMember, ChannelMessageReaction
from realtime.dialects import OPENWEBUI
from testing.factories import api_for, users_create

pytestmark = pytest.mark.django_db(transaction=True)

ENVELOPE_KEYS = {"channel_id", "message_id", "data", "user", "channel", "created_at"}
PLAIN_KEYS = {"channel_id", "message_id", "data", "user"}


@pytest.fixture
async def trio():
    return await users_create("alice", "bob", "carol")


async def make_channel(owner, members, name="general"):
    return await database_sync_to_async(services.channel_create)(
        owner=owner, name=name, kind="group", member_ids=[m.id for m in members]
    )


async def rest(user, method, path, body=None):
    def call():
        response = getattr(api_for(user), method)(path, body, format="json")
        return response.status_code, (response.json() if response.content else None)

    return await database_sync_to_async(call)()


async def next_of(client, kind, timeout=2.0) -> dict:
    """The next events:channel frame of type `kind` (others skipped)."""
    while True:
        data = await client.event("events:channel", timeout)
        if data["data"]["type"] == kind:
            return data


async def quiet(client, wait=0.4) -> list:
    """Every frame that arrives within `wait`."""
    frames = []
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while loop.time() < end:
        if not await client.nothing(0.05):
            frames.append(await client.recv())
    return frames


def typing_frame(channel_id, message_id=None, **extra):
    return {
        "channel_id": channel_id,
        "message_id": message_id,
        "data": {"type": "typing", "data": {"typing": True}},
        **extra,
    }


async def test_message_and_reply_in_the_envelope_with_temp_id(ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    owui = await ws(bob, protocol=OPENWEBUI, join=True)
    plain = await ws(bob, join=True)
    status, root = await rest(
        alice,
        "post",
        f"/api/channels/{channel.id}/messages/",
        {"content": "hello", "temp_id": "tmp-1"},
    )
    assert status == 201
    event = await next_of(owui, "message")
    assert set(event) == ENVELOPE_KEYS
    assert (event["channel_id"], event["message_id"]) == (channel.id, root["id"])
    assert event["user"] == {"id": alice.id, "name": "Alice"}
    assert event["channel"]["id"] == channel.id and event["channel"]["type"] == "group"
    assert isinstance(event["created_at"], int)
    message = event["data"]["data"]
    assert message["temp_id"] == "tmp-1" and message["parent_id"] is None
    assert message["content"] == "hello" and message["user_id"] == alice.id
    assert message["user"] == {"id": alice.id, "name": "Alice"}
    assert isinstance(message["created_at"], int)
    # The realtime socket: today's payload, the message as REST gives it.
    same = await next_of(plain, "message")
    assert set(same) == PLAIN_KEYS
    assert same["data"]["data"] == root

    status, reply = await rest(
        bob,
        "post",
        f"/api/channels/{channel.id}/messages/",
        {"content": "in thread", "parent_id": root["id"], "temp_id": "tmp-2"},
    )
    assert status == 201
    posted = await next_of(owui, "message")
    assert posted["data"]["data"]["parent_id"] == root["id"]
    assert posted["data"]["data"]["temp_id"] == "tmp-2"
    replied = await next_of(owui, "message:reply")
    assert replied["message_id"] == root["id"]
    assert replied["data"]["data"]["id"] == root["id"]
    assert replied["data"]["data"]["reply_count"] == 1
    assert isinstance(replied["data"]["data"]["latest_reply_at"], int)
    plain_reply = await next_of(plain, "message:reply")
    assert plain_reply["data"]["data"]["reply_count"] == 1
    # Deleting the reply sends the root again with its new count.
    status, _ = await rest(
        bob, "delete", f"/api/channels/{channel.id}/messages/{reply['id']}/"
    )
    assert status == 204
    deleted = await next_of(owui, "message:delete")
    assert deleted["data"]["data"]["id"] == reply["id"]
    assert (await next_of(owui, "message:reply"))["data"]["data"]["reply_count"] == 0


async def test_channel_created_comes_inside_events_channel(ws, trio):
    alice, bob, _ = trio
    owui = await ws(bob, protocol=OPENWEBUI, join=True)
    plain = await ws(bob, join=True)
    channel = await make_channel(alice, [bob])
    created = await next_of(owui, "channel:created")
    assert set(created) == ENVELOPE_KEYS and created["channel_id"] == channel.id
    assert created["data"]["data"]["id"] == channel.id
    assert created["user"]["id"] == alice.id
    assert (await plain.event("channel:created"))["id"] == channel.id
    assert not [f for f in await quiet(owui) if f.get("event") == "channel:created"]


async def test_join_channels_with_auth_and_last_read_at(ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    owui = await ws(bob, protocol=OPENWEBUI)
    joined = await owui.call("join-channels", {"auth": {"token": "anything"}})
    assert joined["data"] == {"channel_ids": [channel.id]}
    read = await owui.call(
        "events:channel",
        {
            "channel_id": channel.id,
            "message_id": None,
            "data": {"type": "last_read_at"},
        },
    )
    assert "last_read_at" in read["data"]
    rows = await database_sync_to_async(
        lambda: dict(ChannelMember.objects.values_list("user_id", "last_read_at"))
    )()
    assert rows[bob.id] is not None and rows[alice.id] is None


async def test_typing_times_out_on_the_server_and_refreshes(ws, trio, settings):
    settings.CHANNEL_TYPING_TIMEOUT = 0.4
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    a = await ws(alice, protocol=OPENWEBUI, join=True)
    owui, plain = await ws(bob, protocol=OPENWEBUI, join=True), await ws(bob, join=True)
    # As Open WebUI sends it: no ack, never `typing: false`.
    await a.send({"event": "events:channel", "data": typing_frame(channel.id)})
    on = await next_of(owui, "typing")
    assert set(on) == ENVELOPE_KEYS and on["message_id"] is None
    assert on["data"]["data"] == {"typing": True} and on["user"]["id"] == alice.id
    assert (await next_of(plain, "typing"))["data"]["data"] == {"typing": True}
    # Refreshes keep it alive: nobody hears false while they come, and the sender
    # gets no error for refreshing faster than the relay interval.
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await asyncio.sleep(0.2)
        await a.send({"event": "events:channel", "data": typing_frame(channel.id)})
    last_refresh = loop.time()
    off = await next_of(owui, "typing", timeout=2)
    if off["data"]["data"] == {"typing": True}:  # a relay past the interval
        off = await next_of(owui, "typing", timeout=2)
    assert off["data"]["data"] == {"typing": False}
    assert loop.time() - last_refresh >= 0.35
    assert off["user"]["id"] == alice.id
    # The realtime socket heard the same spell: true (once or twice), then false.
    flags = [(await next_of(plain, "typing"))["data"]["data"]["typing"]]
    while flags[-1]:
        flags.append((await next_of(plain, "typing"))["data"]["data"]["typing"])
    assert flags in ([True, False], [True, True, False])
    assert [f for f in await quiet(a, 0.3) if "error" in f or f.get("ack")] == []


async def test_typing_in_a_thread_is_its_own(ws, trio, settings):
    settings.CHANNEL_TYPING_TIMEOUT = 0.3
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    root = await database_sync_to_async(services.message_post)(
        author=alice, channel_id=channel.id, content="root"
    )
    a = await ws(alice, protocol=OPENWEBUI, join=True)
    b = await ws(bob, protocol=OPENWEBUI, join=True)
    assert (await a.call("events:channel", typing_frame(channel.id)))["data"] is None
    thread = typing_frame(channel.id, message_id=root.id)
    assert (await a.call("events:channel", thread))["data"] is None
    seen = [await next_of(b, "typing") for _ in range(2)]
    assert sorted((e["message_id"] or 0) for e in seen) == [0, root.id]
    offs = [await next_of(b, "typing") for _ in range(2)]
    assert {e["data"]["data"]["typing"] for e in offs} == {False}
    assert sorted((e["message_id"] or 0) for e in offs) == [0, root.id]


async def test_a_socket_types_in_a_bounded_number_of_places(ws, trio, monkeypatch):
    from channels_app import events

    monkeypatch.setattr(events, "MAX_TYPING_SPELLS", 2)
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    roots = [
        await database_sync_to_async(services.message_post)(
            author=alice, channel_id=channel.id, content=f"root {i}"
        )
        for i in range(2)
    ]
    a = await ws(alice, protocol=OPENWEBUI, join=True)
    b = await ws(bob, protocol=OPENWEBUI, join=True)
    assert "data" in await a.call("events:channel", typing_frame(channel.id))
    thread = typing_frame(channel.id, roots[0].id)
    assert "data" in await a.call("events:channel", thread)
    third = await a.call("events:channel", typing_frame(channel.id, roots[1].id))
    assert third["error"]["code"] == "rate_limited"
    seen = [await next_of(b, "typing") for _ in range(2)]
    assert roots[1].id not in [e["message_id"] for e in seen]
    # A refresh of a place it already types in is still fine.
    await asyncio.sleep(0.5)
    assert "data" in await a.call("events:channel", thread)


async def test_a_typist_who_leaves_stops_typing(ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    a = await ws(alice, protocol=OPENWEBUI, join=True)
    b = await ws(bob, join=True)
    await a.call("events:channel", typing_frame(channel.id))
    assert (await next_of(b, "typing"))["data"]["data"] == {"typing": True}
    await a.close()
    assert (await next_of(b, "typing"))["data"]["data"] == {"typing": False}


async def test_bad_frames_in_open_webuis_shape(ws, trio):
    alice, bob, carol = trio
    channel = await make_channel(alice, [bob])
    other = await make_channel(carol, [bob], name="other")
    elsewhere = await database_sync_to_async(services.message_post)(
        author=carol, channel_id=other.id, content="elsewhere"
    )
    a = await ws(alice, protocol=OPENWEBUI, join=True)
    b = await ws(bob, protocol=OPENWEBUI, join=True)
    # Not a member of `other`.
    refused = await a.call("events:channel", typing_frame(other.id))
    assert refused["error"]["code"] == "forbidden"
    # A thread of another channel.
    refused = await a.call("events:channel", typing_frame(channel.id, elsewhere.id))
    assert refused["error"]["code"] == "not_found"
    # An unknown type, and a malformed typing flag.
    for data in ({"type": "shout"}, {"type": "typing", "data": {"typing": "yes"}}):
        frame = {"channel_id": channel.id, "message_id": None, "data": data}
        assert (await a.call("events:channel", frame))["error"]["code"] == "bad_request"
    # Sent as Open WebUI sends it, without an ack: the error comes as an event.
    frame = {"channel_id": other.id, "message_id": None, "data": {"type": "typing"}}
    await a.send({"event": "events:channel", "data": frame})
    error = await a.event("error")
    assert (error["code"], error["event"]) == ("forbidden", "events:channel")
    assert [f for f in await quiet(b) if f.get("event") == "events:channel"] == []
    # Spoofed identity: accepted, and the relay names the session's user.
    spoof = typing_frame(
        channel.id,
        user_id=carol.id,
        user_name="Carol",
        user_color="#000000",
        socket_id=b.sid,
        user={"id": carol.id, "name": "Carol"},
        auth={"token": "x"},
    )
    assert (await a.call("events:channel", spoof))["data"] is None
    relayed = await next_of(b, "typing")
    assert relayed["user"] == {"id": alice.id, "name": "Alice"}
    # The socket is still usable.
    assert "data" in await a.call("join-channels", {"auth": {"token": "x"}})


async def test_reactions_rest_events_and_representation(ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    message = await database_sync_to_async(services.message_post)(
        author=alice, channel_id=channel.id, content="react to me"
    )
    path = f"/api/channels/{channel.id}/messages/{message.id}/reactions/"
    owui, plain = (
        await ws(alice, protocol=OPENWEBUI, join=True),
        await ws(bob, join=True),
    )
    status, body = await rest(bob, "post", path, {"name": "thumbsup"})
    assert status == 201
    assert body["reactions"] == [{"name": "thumbsup", "user_ids": [bob.id], "count": 1}]
    added = await next_of(owui, "message:reaction:add")
    assert set(added) == ENVELOPE_KEYS and added["message_id"] == message.id
    assert added["data"]["data"]["name"] == "thumbsup"
    assert added["data"]["data"]["reactions"] == body["reactions"]
    assert added["user"]["id"] == bob.id
    assert (await next_of(plain, "message:reaction:add"))["data"]["data"][
        "reactions"
    ] == body["reactions"]
    # The same again: 200, nothing new, no event.
    assert (await rest(bob, "post", path, {"name": "thumbsup"}))[0] == 200
    status, body = await rest(alice, "post", path, {"name": "thumbsup"})
    assert body["reactions"][0]["user_ids"] == [bob.id, alice.id]
    assert (await next_of(owui, "message:reaction:add"))["user"]["id"] == alice.id
    listed = (await rest(bob, "get", f"/api/channels/{channel.id}/messages/"))[1]
    assert listed[0]["reactions"] == [
        {"name": "thumbsup", "user_ids": [bob.id, alice.id], "count": 2}
    ]
    status, _ = await rest(bob, "delete", f"{path}thumbsup/")
    assert status == 204
    removed = await next_of(owui, "message:reaction:remove")
    assert removed["data"]["data"]["name"] == "thumbsup"
    assert removed["data"]["data"]["reactions"][0]["user_ids"] == [alice.id]
    status, body = await rest(bob, "delete", f"{path}thumbsup/")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert await database_sync_to_async(ChannelMessageReaction.objects.count)() == 1


async def test_bad_reactions(ws, trio):
    alice, bob, carol = trio
    channel = await make_channel(alice, [bob])
    other = await make_channel(alice, [carol], name="other")
    there = await database_sync_to_async(services.message_post)(
        author=alice, channel_id=other.id, content="in other"
    )
    here = await database_sync_to_async(services.message_post)(
        author=alice, channel_id=channel.id, content="here"
    )
    b = await ws(bob, protocol=OPENWEBUI, join=True)
    base = f"/api/channels/{channel.id}/messages"
    cases = [
        # A message of another channel, named through this one (alice is in both).
        (alice, f"{base}/{there.id}/reactions/", {"name": "x"}, 404),
        # ... and it is 404 before the body is read, a bad body too.
        (alice, f"{base}/{there.id}/reactions/", {"name": "x" * 65}, 404),
        # Not a member of the channel.
        (carol, f"{base}/{here.id}/reactions/", {"name": "x"}, 404),
        (alice, f"{base}/{here.id}/reactions/", {"name": "x" * 65}, 400),
        (alice, f"{base}/{here.id}/reactions/", {"name": ""}, 400),
        (alice, f"{base}/{here.id}/reactions/", {"name": 5}, 400),
        (alice, f"{base}/{here.id}/reactions/", {"name": "x", "user_id": 1}, 201),
    ]
    for user, path, body, expected in cases:
        status, answer = await rest(user, "post", path, body)
        assert status == expected, (path, body, answer)
        if expected >= 400:
            assert answer["error"]["code"] in ("bad_request", "not_found")
    rows = await database_sync_to_async(
        lambda: list(ChannelMessageReaction.objects.values_list("user_id", "name"))
    )()
    assert rows == [(alice.id, "x")]  # the extra user_id was no one's identity
    events = [f for f in await quiet(b) if f.get("event") == "events:channel"]
    assert [e["data"]["data"]["type"] for e in events] == ["message:reaction:add"]


async def test_mute_reaches_only_the_members_sessions(ws, trio):
    alice, bob, _ = trio
    channel = await make_channel(alice, [bob])
    owui, plain = await ws(bob, protocol=OPENWEBUI, join=True), await ws(bob, join=True)
    other = await ws(alice, protocol=OPENWEBUI, join=True)
    status, body = await rest(bob, "post", f"/api/channels/{channel.id}/mute/")
    assert (status, body) == (200, {"channel_id": channel.id, "is_muted": True})
    muted = await next_of(owui, "channel:mute")
    assert set(muted) == ENVELOPE_KEYS
    assert muted["data"]["data"] == {"is_channel_muted": True}
    assert await plain.event("channel:mute") == {
        "channel_id": channel.id,
        "is_channel_muted": True,
    }
    assert [f for f in await quiet(other) if f.get("event")] == []
    # Muted: still counted as unread, and said so.
    await rest(alice, "post", f"/api/channels/{channel.id}/messages/", {"content": "x"})
    row = (await rest(bob, "get", "/api/channels/"))[1][0]
    assert (row["is_muted"], row["unread_count"]) == (True, 1)
    status, body = await rest(bob, "post", f"/api/channels/{channel.id}/unmute/")
    assert body["is_muted"] is False
    assert (await next_of(owui, "channel:mute"))["data"]["data"] == {
        "is_channel_muted": False
    }
    status, body = await rest(alice, "post", "/api/channels/nope/mute/")
    assert (status, body["error"]["code"]) == (404, "not_found")
