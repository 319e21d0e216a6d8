"""Chats over the HTTP transport (docs/protocol.md §10) on two real server processes:
one session of a user streams over HTTP, its POSTs landing on the other instance,
next to a WebSocket session in the same rooms."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chats.caller import get_event_call
from chats.emitter import get_event_emitter
from chats.fake_model import fake_tokens
from chats.models import ChatRead
from chats.services import PROMPT_EVENT
from realtime.rooms import user_room
from testing.chat_events import call, chat_events, frame, quiet, send, users
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_get, http_post
from testing.factories import chat_create, chat_shared, token_for
from testing.http_transport import RealHttp
from testing.recovery import PROMPT, Positions, completion_start, read_chat

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


async def over_http(server, other, user, **connect) -> tuple[SocketClient, dict]:
    """A session streaming from `server` whose POSTs go to `other` and `server` in
    turn; the client and its connect ack."""
    client = await SocketClient.open(
        RealHttp(server.http, post_to=[other.http, server.http])
    )
    return client, await client.connect(user, **connect)


async def chat_over_rest(server, user, chat) -> dict:
    status, body = await asyncio.to_thread(
        http_get, f"{server.http}/api/chats/{chat.id}/", token_for(user)
    )
    assert status == 200, body
    return body


async def stored_message(server, user, chat, message_id: str) -> dict:
    """A message of the chat as REST gives it."""
    body = await chat_over_rest(server, user, chat)
    (message,) = [m for m in body["messages"] if m["message_id"] == message_id]
    return message


async def events_until(client: SocketClient, last: str) -> list[dict]:
    """Every `events` frame's data up to and with the first of type `last`."""
    seen = []
    while True:
        got = await client.event("events", timeout=10)
        seen.append(got)
        if got["data"]["type"] == last:
            return seen


def message_text(seen: list[dict]) -> list[str]:
    return [
        e["data"]["data"]["content"] for e in seen if e["data"]["type"] == "message"
    ]


async def test_a_stream_reaches_the_http_and_the_websocket_session_alike(
    cluster, people
):
    one, two = cluster
    alice = people["alice"]
    chat = await chat_create(alice)
    web, _ = await over_http(one, two, alice)
    tab = await SocketClient.open(RealSocket(two.ws), alice)
    try:
        started = await completion_start(two, alice, chat, tokens=40, tps=200)
        http_seen, ws_seen = await asyncio.gather(
            events_until(web, "chat:completion"), events_until(tab, "chat:completion")
        )
        assert http_seen == ws_seen
        # The prompt's event, then the answer's.
        answer = [e for e in http_seen if e["data"]["type"] != PROMPT_EVENT]
        assert {e["message_id"] for e in answer} == {started["message_id"]}
        assert message_text(http_seen) == fake_tokens(PROMPT, 40)
        # A title and tags a model emits from this process reach both as well.
        emit = get_event_emitter(alice.id, chat.id, started["message_id"])
        await emit({"type": "chat:title", "data": "Streams"})
        await emit({"type": "chat:tags", "data": ["http", "sse"]})
        await emit.close()
        for client in (web, tab):
            assert (await chat_events(client, "chat:title", 5))["data"]["data"] == (
                "Streams"
            )
            tags = await chat_events(client, "chat:tags", 5)
            assert tags["data"]["data"] == ["http", "sse"]
        body = await chat_over_rest(one, alice, chat)
        assert (body["title"], body["tags"]) == ("Streams", ["http", "sse"])
    finally:
        await web.close()
        await tab.close()


async def test_a_call_is_answered_through_a_post_to_the_other_instance(cluster, people):
    one, two = cluster
    alice = people["alice"]
    web, _ = await over_http(two, one, alice)
    tab = await SocketClient.open(RealSocket(one.ws), alice)
    try:
        ask = get_event_call(alice.id, web.sid, "chat-7", "m7", timeout=5)
        pending = asyncio.ensure_future(
            ask({"type": "execute:python", "data": {"code": "6*7"}})
        )
        asked = await web.recv(5)
        assert asked["event"] == "events" and "call" in asked
        assert asked["data"]["session_id"] == web.sid
        await web.send({"reply": asked["call"], "data": {"result": 42}})
        assert await pending == {"result": 42}
        # Only the session called heard of it.
        assert await tab.nothing(0.3)
    finally:
        await web.close()
        await tab.close()


async def test_presence_and_typing_between_an_http_and_a_websocket_user(
    cluster, people
):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    chat = await chat_shared(alice, writers=[bob])
    web, _ = await over_http(one, two, alice)
    tab = await SocketClient.open(RealSocket(two.ws), bob)
    try:
        assert (await call(web, frame(chat.id, "join")))["data"] is True
        assert (await chat_events(web, "chat:presence", 5))["data"]["data"][
            "users"
        ] == users(alice)
        assert (await call(tab, frame(chat.id, "join")))["data"] is True
        for client in (web, tab):
            presence = await chat_events(client, "chat:presence", 5)
            assert presence["data"]["data"]["users"] == users(alice, bob)
        # Typing each way, then its end, as the other user sees it.
        for typist, watcher, who in ((web, tab, alice), (tab, web, bob)):
            for flag in (True, False):
                typing = frame(chat.id, "typing", {"typing": flag})
                assert (await call(typist, typing))["data"] is True
                relayed = await chat_events(watcher, "typing", 5)
                assert (relayed["user_id"], relayed["data"]["data"]) == (
                    who.id,
                    {"typing": flag},
                )
            assert await quiet(typist, "typing", 0.3)
        # Alice leaves over HTTP: bob is alone.
        assert (await call(web, frame(chat.id, "leave")))["data"] is True
        presence = await chat_events(tab, "chat:presence", 5)
        assert presence["data"]["data"]["users"] == users(bob)
    finally:
        await web.close()
        await tab.close()


async def test_last_read_at_over_http_reaches_each_session_of_the_user(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    chat = await chat_shared(alice, readers=[bob])
    web, _ = await over_http(two, one, bob)
    tab = await SocketClient.open(RealSocket(one.ws), bob)
    other = await SocketClient.open(RealSocket(two.ws), alice)
    try:
        await send(web, frame(chat.id, "last_read_at"))  # without an ack, as Open WebUI
        listed = await chat_events(web, "chat:list", 5)
        assert listed == await chat_events(tab, "chat:list", 5)
        stored = await database_sync_to_async(ChatRead.objects.get)(chat=chat, user=bob)
        assert listed["data"]["data"] == {
            "chat_id": chat.id,
            "last_read_at": int(stored.last_read_at.timestamp()),
        }
        assert await quiet(other, "chat:list")
    finally:
        await web.close()
        await tab.close()
        await other.close()


async def test_a_stream_to_an_http_session_is_stopped_from_the_other_instance(
    cluster, people
):
    one, two = cluster
    alice = people["alice"]
    chat = await chat_create(alice)
    web, _ = await over_http(one, two, alice)
    try:
        started = await completion_start(one, alice, chat, tokens=2000, tps=50)
        positions, pieces = Positions(), []
        assert await read_chat(web, positions, pieces, limit=5) == "limit"
        status, reply = await asyncio.to_thread(
            http_post,
            f"{two.http}/api/tasks/{started['task_id']}/stop",
            {},
            token_for(alice),
        )
        assert (status, reply) == (200, {"stopped": True})
        until = "chat:tasks:cancel"
        assert await read_chat(web, positions, pieces, until=until) == "until"
        message = await stored_message(two, alice, chat, started["message_id"])
        assert message["content"] == "".join(pieces) and not message["done"]
        assert 5 <= len(pieces) < 2000
    finally:
        await web.close()


async def test_an_http_downstream_cut_mid_stream_resumes_with_nothing_lost(
    cluster, people
):
    one, two = cluster
    alice = people["alice"]
    chat = await chat_create(alice)
    positions, pieces = Positions(), []
    web, hello = await over_http(one, two, alice)
    positions.hello(hello)
    started = await completion_start(two, alice, chat, tokens=150, tps=50)
    assert await read_chat(web, positions, pieces, limit=15) == "limit"
    missed_from = positions.rooms[user_room(alice.id)]["offset"]
    await web.abort()  # the fetch aborted: no close event, the session ends
    await asyncio.sleep(1)
    # A new stream, this time from instance two, presenting what it had.
    web, hello = await over_http(two, one, alice, recover=positions.recover())
    try:
        positions.hello(hello)
        assert hello["recovered"] is True, hello
        recovery = hello["recovery"][user_room(alice.id)]
        assert recovery["replayed"] > 0 and recovery["offset"] > missed_from
        assert await read_chat(web, positions, pieces) == "until"
    finally:
        await web.close()
    assert positions.duplicates == []
    message = await stored_message(one, alice, chat, started["message_id"])
    assert message["done"] and "".join(pieces) == message["content"]
    assert pieces == fake_tokens(PROMPT, 150)
