"""Chat streaming across two real server processes (daphne and uvicorn) on Redis."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from chats.caller import get_event_call
from chats.fake_model import fake_tokens
from chats.models import Message
from realtime.errors import EventError
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_get, http_post
from testing.factories import chat_create, token_for
from testing.services import PRIVATE_REDIS_URL

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


async def start_completion(server, user, chat, **body) -> dict:
    status, reply = await asyncio.to_thread(
        http_post,
        f"{server.http}/api/chats/{chat.id}/completions",
        {"prompt": "what is streaming", **body},
        token_for(user),
    )
    assert status == 202, reply
    return reply


async def collect(client, *, until: str, pieces: list, limit: int | None = None):
    """Read `events` frames until an event of type `until` (or `limit` pieces)."""
    while True:
        event = (await client.event("events", timeout=10))["data"]
        if event["type"] == "message":
            pieces.append(event["data"]["content"])
            if limit and len(pieces) >= limit:
                return event["type"]
        if event["type"] == until:
            return event["type"]


async def stop_over_rest(server, task_id: str, user) -> tuple[int, dict]:
    """POST /api/tasks/{id}/stop on a server process."""
    return await asyncio.to_thread(
        http_post, f"{server.http}/api/tasks/{task_id}/stop", {}, token_for(user)
    )


@database_sync_to_async
def message_row(chat, message_id) -> Message:
    return Message.objects.get(chat=chat, message_id=message_id)


@pytest.fixture
async def alice_chat(people):
    chat = await chat_create(people["alice"])
    return people["alice"], chat


@pytest.mark.also_on_redis_cluster
async def test_stream_started_on_one_instance_reaches_a_session_on_the_other(
    cluster, alice_chat
):
    one, two = cluster
    alice, chat = alice_chat
    tab = await SocketClient.open(RealSocket(two.ws), alice)
    started = await start_completion(one, alice, chat, tokens=20, tokens_per_second=200)
    pieces: list[str] = []
    await collect(tab, until="chat:completion", pieces=pieces)
    await tab.close()
    assert pieces == fake_tokens("what is streaming", 20)
    await asyncio.sleep(0.1)
    row = await message_row(chat, started["message_id"])
    assert (row.content, row.done) == ("".join(pieces), True)


@pytest.mark.also_on_redis_cluster
async def test_stop_from_the_other_instance(cluster, alice_chat):
    one, two = cluster
    alice, chat = alice_chat
    tab = await SocketClient.open(RealSocket(two.ws), alice)
    started = await start_completion(
        one, alice, chat, tokens=2000, tokens_per_second=50
    )
    pieces: list[str] = []
    await collect(tab, until="never", pieces=pieces, limit=5)
    assert await stop_over_rest(two, started["task_id"], alice) == (
        200,
        {"stopped": True},
    )
    await collect(tab, until="chat:tasks:cancel", pieces=pieces)
    await tab.close()
    row = await message_row(chat, started["message_id"])
    assert row.content == "".join(pieces) and not row.done
    # The stop crossed instances with who asked for it.
    assert (row.state, row.stop_reason) == ("stopped", "user")
    assert 5 <= len(pieces) < 2000
    status, listed = await asyncio.to_thread(
        http_get, f"{one.http}/api/tasks/", token_for(alice)
    )
    assert (status, listed) == (200, [])


@pytest.mark.cluster_env(STREAM_FLUSH_INTERVAL=30)
@pytest.mark.parametrize("index", [0, 1], ids=["daphne", "uvicorn"])
async def test_sigterm_mid_stream_loses_nothing_streamed(cluster, alice_chat, index):
    server = cluster[index]
    watcher_server = cluster[1 - index]
    alice, chat = alice_chat
    tab = await SocketClient.open(RealSocket(watcher_server.ws), alice)
    # A long flush interval cannot hide loss: only the shutdown path writes.
    started = await start_completion(
        server, alice, chat, tokens=2000, tokens_per_second=40
    )
    pieces: list[str] = []
    await collect(tab, until="never", pieces=pieces, limit=12)
    await asyncio.to_thread(server.terminate)
    # Frames already in flight still arrive; anything the server sent was streamed.
    try:
        await collect(tab, until="chat:tasks:cancel", pieces=pieces)
    except TimeoutError:
        pass  # daphne stops without cancelling tasks: no cancel event
    await tab.close()
    row = await message_row(chat, started["message_id"])
    received = "".join(pieces)
    assert len(pieces) >= 12
    assert row.content.startswith(received)
    # Text is stored before it is sent, never the other way round. daphne's exit
    # hook writes what was buffered after the loop stopped, so the one piece whose
    # send was in flight (its history append, then the layer) may be stored unsent.
    in_flight = fake_tokens("what is streaming", 2000)[len(pieces)]
    assert row.content[len(received) :] in ("", in_flight)
    # uvicorn stops its tasks (lifespan); daphne's exit hook ends what is open.
    assert (row.state, row.stop_reason) == ("stopped", "shutdown")


@pytest.mark.also_on_redis_cluster
async def test_killed_client_does_not_stop_the_stream(cluster, alice_chat):
    one, _ = cluster
    alice, chat = alice_chat
    tab = await SocketClient.open(RealSocket(one.ws), alice)
    started = await start_completion(one, alice, chat, tokens=30, tokens_per_second=100)
    await collect(tab, until="never", pieces=[], limit=2)
    await tab.abort()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = await message_row(chat, started["message_id"])
        if row.done:
            break
        await asyncio.sleep(0.1)
    assert row.done
    assert row.content == "".join(fake_tokens("what is streaming", 30))


@pytest.mark.also_on_redis_cluster
async def test_call_reaches_a_session_on_another_instance(cluster, people):
    _, two = cluster
    alice = people["alice"]
    tab = await SocketClient.open(RealSocket(two.ws), alice)

    async def answer():
        while True:
            frame = await tab.recv(5)
            if "call" in frame:
                reply = {
                    "reply": frame["call"],
                    "data": {"echo": frame["data"]["data"]},
                }
                await tab.send(reply)
                return

    answering = asyncio.ensure_future(answer())
    call = get_event_call(alice.id, tab.sid, "chat-9", "m9", timeout=5)
    result = await call({"type": "execute:python", "data": {"code": "1"}})
    await answering
    # The call carries the called socket's id, as Open WebUI's client requires.
    asked = {"type": "execute:python", "data": {"code": "1", "session_id": tab.sid}}
    assert result == {"echo": asked}
    # Someone else's session is refused before anything reaches it.
    bob_call = get_event_call(people["bob"].id, tab.sid, "chat-9", "m9", timeout=1)
    with pytest.raises(EventError) as raised:
        await bob_call({"type": "execute:python", "data": {}})
    assert raised.value.code == "forbidden"
    await tab.close()


@pytest.mark.cluster_env(REDIS_URL=PRIVATE_REDIS_URL)
async def test_stream_and_stop_survive_a_redis_restart(
    private_redis, cluster, alice_chat
):
    one, two = cluster
    alice, chat = alice_chat
    tab = await SocketClient.open(RealSocket(two.ws), alice)
    started = await start_completion(
        one, alice, chat, tokens=2000, tokens_per_second=20
    )
    pieces: list[str] = []
    await collect(tab, until="never", pieces=pieces, limit=5)
    # Redis restarts empty: sessions, routes and task records are gone until the
    # instances notice (liveness lapsed) and write theirs again.
    private_redis.kill()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(private_redis.start)
    await collect(tab, until="never", pieces=pieces, limit=len(pieces) + 10)
    assert await stop_over_rest(two, started["task_id"], alice) == (
        200,
        {"stopped": True},
    )
    await collect(tab, until="chat:tasks:cancel", pieces=pieces)
    await tab.close()
    row = await message_row(chat, started["message_id"])
    # The database has every generated token, in order, with no gap.
    full = fake_tokens("what is streaming", 2000)
    stored = next(k for k in range(len(full) + 1) if "".join(full[:k]) == row.content)
    assert stored >= len(pieces)
    # Emits waited out the outage; only frames inside Redis when it died are lost
    # to clients (it keeps nothing on disk). Everything received is in order.
    it = iter(full[:stored])
    assert all(piece in it for piece in pieces)
    assert stored - len(pieces) <= 3, (stored, len(pieces))
