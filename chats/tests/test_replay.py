"""Open WebUI's chat frames (fixtures/openwebui_chat_frames.json) replayed from
openwebui sockets against two real server processes on Redis: each frame's documented
answer, and what the owner, on the other instance, receives in Open WebUI's shapes;
then the shared stream, the refusals, a revocation and a disconnect across instances.
"""

import asyncio
import json
import time
from pathlib import Path

import pytest

from chats.fake_model import fake_tokens
from realtime.dialects import OPENWEBUI
from testing.chat_events import call, chat_events, event, frame, quiet, send, users
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_post, http_request
from testing.factories import chat_create, chat_shared, token_for, users_create

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "openwebui_chat_frames.json").read_text()
)
TYPING_TIMEOUT = 1.0


def fill(value, places: dict):
    """The fixture's value with its placeholders replaced."""
    if isinstance(value, str):
        return places.get(value, value)
    if isinstance(value, list):
        return [fill(v, places) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, places) for k, v in value.items()}
    return value


async def owui(server, user) -> SocketClient:
    return await SocketClient.open(RealSocket(server.ws), user, protocol=OPENWEBUI)


async def replay(client: SocketClient, spec: dict, places: dict):
    """Send one fixture frame as Open WebUI does; the ack's data, if it has an ack."""
    data = fill(spec["data"], places)
    if spec["ack"]:
        return await call(client, data, spec["event"])
    await send(client, data, spec["event"])
    return None


def kind_of(expected: dict) -> str:
    return expected["data"]["data"]["type"]


@pytest.mark.cluster_env(CHAT_TYPING_TIMEOUT=TYPING_TIMEOUT)
async def test_open_webui_chat_frames_across_two_instances(cluster):
    one, two = cluster
    alice, bob, carol = await users_create("alice", "bob", "carol")
    chat = await chat_shared(alice, writers=[bob])
    foreign = await chat_create(carol)
    reader_chat = await chat_shared(carol, readers=[bob])
    places = {
        "$chat": chat.id,
        "$foreign": foreign.id,
        "$reader_chat": reader_chat.id,
        "$owner_id": alice.id,
        "$owner_name": alice.display_name,
        "$sender_id": bob.id,
        "$sender_name": bob.display_name,
    }
    owner = await owui(one, alice)  # Alice has the chat open on instance one
    assert (await call(owner, frame(chat.id, "join")))["data"] is True
    presence = await chat_events(owner, "chat:presence", timeout=5)
    assert presence["data"]["data"]["users"] == users(alice)
    sender = await owui(two, bob)  # Bob replays Open WebUI's frames on instance two

    for spec in FIXTURE["frames"]:
        reply = await replay(sender, spec, places)
        if spec["ack"]:
            assert reply["data"] == spec["answer"], spec["name"]
        expected = spec.get("room_gets")
        if expected is not None:
            got = await chat_events(owner, kind_of(expected), timeout=5)
            assert got == fill(expected["data"], places), spec["name"]
        if "then_room_gets" in spec:
            later = spec["then_room_gets"]
            began = time.monotonic()
            got = await chat_events(owner, kind_of(later), timeout=5)
            assert got == fill(later["data"], places), spec["name"]
            assert time.monotonic() - began >= TYPING_TIMEOUT * 0.5
        if "sender_gets" in spec:
            wanted = spec["sender_gets"]
            got = await chat_events(sender, kind_of(wanted), timeout=5)
            at = got["data"]["data"]["last_read_at"]
            assert isinstance(at, int) and abs(at - time.time()) < 30
            assert got == fill(wanted["data"], {**places, "$now": at}), spec["name"]
        if expected is None:
            assert await quiet(owner, "chat:list"), spec["name"]
    # No frame of the replay was refused.
    errors = [
        f for f in sender.__dict__.get("backlog", []) if f.get("event") == "error"
    ]
    assert errors == []

    # Bob joins again; Alice's answer, streamed on instance one, reaches him as
    # shared copies on instance two, and her own tab once, without `shared`.
    await call(sender, frame(chat.id, "join"))
    await chat_events(owner, "chat:presence", timeout=5)
    status, started = await asyncio.to_thread(
        http_post,
        f"{one.http}/api/chats/{chat.id}/completions",
        {"prompt": "what is sharing", "tokens": 5, "tokens_per_second": 100},
        token_for(alice),
    )
    assert status == 202, started
    theirs, mine = [], []
    for client, pieces in ((sender, theirs), (owner, mine)):
        while True:
            got = await event(client, "events", timeout=10)
            if got["data"]["type"] == "message":
                pieces.append(got)
            if got["data"]["type"] == "chat:completion":
                break
    words = fake_tokens("what is sharing", 5)
    assert [g["data"]["data"]["content"] for g in theirs] == words
    assert {(g.get("shared"), g.get("user_id")) for g in theirs} == {(True, alice.id)}
    assert [g["data"]["data"]["content"] for g in mine] == words
    assert all("shared" not in g for g in mine)

    # The refusals, in Open WebUI's shapes: `false` (when acked) and an error event.
    for spec in FIXTURE["refused"]:
        reply = await replay(sender, spec, places)
        if "error_ack" in spec:
            assert reply["error"]["code"] == spec["error_ack"], spec["name"]
            continue
        if spec["ack"]:
            assert reply["data"] == spec["answer"], spec["name"]
        error = await event(sender, "error", timeout=5)
        assert (error["code"], error["event"]) == (spec["error"], "events:chat")
    assert await quiet(owner, "typing")

    # Alice revokes Bob's grant on instance one: his socket on two leaves the room at
    # once, the room hears it, and his next typing is refused.
    status, body = await asyncio.to_thread(
        http_request,
        f"{one.http}/api/chats/{chat.id}/share/{bob.id}/",
        token_for(alice),
        method="DELETE",
    )
    assert (status, body) == (200, {"grants": {}})
    presence = await chat_events(owner, "chat:presence", timeout=5)
    assert presence["data"]["data"]["users"] == users(alice)
    reply = await call(sender, frame(chat.id, "typing", {"typing": True}))
    assert reply["data"] is False
    assert (await event(sender, "error", timeout=5))["code"] == "forbidden"

    # Carol, on instance two, joins her chat where Bob reads; her socket closing is
    # seen by Bob on instance one.
    reader = await owui(one, bob)
    assert (await call(reader, frame(reader_chat.id, "join")))["data"] is True
    await chat_events(reader, "chat:presence", timeout=5)
    other = await owui(two, carol)
    await call(other, frame(reader_chat.id, "join"))
    presence = await chat_events(reader, "chat:presence", timeout=5)
    assert presence["data"]["data"]["users"] == users(bob, carol)
    await other.close()
    presence = await chat_events(reader, "chat:presence", timeout=5)
    assert presence["data"]["data"]["users"] == users(bob)
    for client in (owner, sender, reader):
        await client.close()
