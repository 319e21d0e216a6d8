"""Resumable delivery of chat streams across two real server processes (daphne and
uvicorn) on the real Redis: cut connections, a killed instance, a second device."""

import asyncio

import pytest
import redis.asyncio as aioredis
from channels.db import database_sync_to_async

from chats.fake_model import fake_tokens
from chats.models import Message
from chats.services import message_summary
from realtime.rooms import user_room
from realtime.state.redis.history import room_tag
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_get
from testing.factories import chat_create, token_for
from testing.recovery import PROMPT, Positions, completion_start, read_chat
from testing.services import PRIVATE_REDIS_URL, REDIS_TEST_URL

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def stored(chat, message_id) -> dict:
    return message_summary(
        Message.objects.select_related("chat").get(chat=chat, message_id=message_id)
    )


async def connect(server, user, positions: Positions, **recover) -> dict:
    client = await SocketClient.open(RealSocket(server.ws))
    hello = await client.connect(user, **recover)
    positions.hello(hello)
    return client, hello


async def _reconnect_and_finish(server, alice, positions, pieces, missed_from):
    tab, hello = await connect(server, alice, positions, recover=positions.recover())
    room = user_room(alice.id)
    assert hello["recovered"] is True, hello
    assert hello["recovery"][room]["replayed"] > 0
    assert hello["recovery"][room]["offset"] > missed_from
    assert await read_chat(tab, positions, pieces) == "until"
    await tab.close()


async def cut_mid_stream(server, user, *, tokens: int, tps: float, seen: int):
    """An answer streaming from `server` to a socket there, cut (no close frame)
    after `seen` pieces: the chat, the completion, the client's positions, pieces."""
    chat = await chat_create(user)
    positions = Positions()
    pieces: list[str] = []
    tab, _ = await connect(server, user, positions)
    started = await completion_start(server, user, chat, tokens=tokens, tps=tps)
    assert await read_chat(tab, positions, pieces, limit=seen) == "limit"
    await tab.abort()
    return chat, started, positions, pieces


async def follow_unrecovered(tab, hello, room, positions, chat, started, tokens):
    """The room was not recovered (a new epoch): the client takes the room's new
    position, follows the rest live, and REST has the whole answer."""
    assert hello["recovered"] is False
    result = hello["recovery"][room]
    assert result["reason"] == "epoch"
    positions.adopt(room, result)
    rest: list[str] = []
    assert await read_chat(tab, positions, rest, timeout=15) == "until"
    assert positions.duplicates == []
    await tab.close()
    row = await stored(chat, started["message_id"])
    assert row["content"] == "".join(fake_tokens(PROMPT, tokens))
    assert row["content"].endswith("".join(rest)) and len(rest) >= 5


async def test_a_socket_cut_mid_stream_resumes_on_the_other_instance(cluster, people):
    one, two = cluster
    alice = people["alice"]
    chat, started, positions, pieces = await cut_mid_stream(
        one, alice, tokens=150, tps=50, seen=15
    )
    missed_from = positions.rooms[user_room(alice.id)]["offset"]
    await asyncio.sleep(2)
    await _reconnect_and_finish(two, alice, positions, pieces, missed_from)
    assert positions.duplicates == []
    assert pieces == fake_tokens(PROMPT, 150)
    row = await stored(chat, started["message_id"])
    assert "".join(pieces) == row["content"] and row["done"]


async def test_the_instance_holding_the_socket_is_killed_mid_stream(cluster, people):
    generating, holding = cluster
    alice = people["alice"]
    chat = await chat_create(alice)
    positions = Positions()
    pieces: list[str] = []
    tab, _ = await connect(holding, alice, positions)
    started = await completion_start(generating, alice, chat, tokens=150, tps=50)
    assert await read_chat(tab, positions, pieces, limit=15) == "limit"
    missed_from = positions.rooms[user_room(alice.id)]["offset"]
    await asyncio.to_thread(holding.kill)
    assert await read_chat(tab, positions, pieces, timeout=5) == "closed"
    await asyncio.sleep(0.5)
    await _reconnect_and_finish(generating, alice, positions, pieces, missed_from)
    assert positions.duplicates == []
    assert pieces == fake_tokens(PROMPT, 150)
    row = await stored(chat, started["message_id"])
    assert "".join(pieces) == row["content"] and row["done"]


async def test_a_second_device_opens_the_chat_mid_stream_on_another_instance(
    cluster, people
):
    one, two = cluster
    alice = people["alice"]
    chat = await chat_create(alice)
    first = Positions()
    pieces: list[str] = []
    tab, _ = await connect(one, alice, first)
    started = await completion_start(one, alice, chat, tokens=120, tps=40)
    assert await read_chat(tab, first, pieces, limit=20) == "limit"
    # The second device: a socket on instance two, then the chat from REST there.
    second = Positions()
    device, _ = await connect(two, alice, second)
    status, body = await asyncio.to_thread(
        http_get, f"{two.http}/api/chats/{chat.id}/", token_for(alice)
    )
    assert status == 200
    (message,) = [
        m for m in body["messages"] if m["message_id"] == started["message_id"]
    ]
    assert message["state"] == "streaming"
    position = message["position"]
    assert position["room"] == user_room(alice.id)
    # Then what came after the stored position, and the live events after that.
    ack = device.new_ack()
    await device.send({"event": "history", "data": position, "ack": ack})
    live: list[dict] = []
    while True:
        frame = await device.recv(5)
        if frame.get("ack") == ack:
            break
        if frame.get("event") == "events":
            live.append(frame)
    history = frame["data"]
    assert history["recovered"] is True, history
    text = message["content"]
    for event in history["events"]:
        if event["data"]["message_id"] == started["message_id"]:
            inner = event["data"]["data"]
            if inner["type"] == "message":
                text += inner["data"]["content"]
    last = history["offset"]
    later: list[str] = []

    def take(frame):
        inner = frame["data"]["data"]
        if frame["offset"] > last and inner["type"] == "message":
            later.append(inner["data"]["content"])
        return inner["type"]

    kinds = [take(frame) for frame in live]
    while "chat:completion" not in kinds:
        frame = await device.recv(10)
        if frame.get("event") == "events":
            kinds.append(take(frame))
    assert text + "".join(later) == "".join(fake_tokens(PROMPT, 120))
    assert await read_chat(tab, first, pieces) == "until"
    row = await stored(chat, started["message_id"])
    assert row["content"] == text + "".join(later)
    await tab.close()
    await device.close()


async def test_a_history_lost_with_redis_data_says_not_recovered(
    cluster, people, redis_prefix
):
    one, two = cluster
    alice = people["alice"]
    chat, started, positions, _ = await cut_mid_stream(
        one, alice, tokens=100, tps=50, seen=10
    )
    # Redis loses the room's history (what a restart without persistence does to it).
    client = aioredis.from_url(REDIS_TEST_URL)
    room = user_room(alice.id)
    tag = room_tag(room)
    await client.delete(f"{redis_prefix}:hm:{tag}", f"{redis_prefix}:h:{tag}")
    await client.aclose()
    tab, hello = await connect(two, alice, positions, recover=positions.recover())
    await follow_unrecovered(tab, hello, room, positions, chat, started, 100)


@pytest.mark.cluster_env(REDIS_URL=PRIVATE_REDIS_URL)
async def test_after_a_redis_restart_the_room_is_not_recovered(
    private_redis, cluster, people
):
    one, two = cluster
    alice = people["alice"]
    chat, started, positions, _ = await cut_mid_stream(
        one, alice, tokens=200, tps=40, seen=5
    )
    private_redis.kill()  # it keeps nothing on disk: every room's history is gone
    await asyncio.sleep(0.5)
    await asyncio.to_thread(private_redis.start)
    room = user_room(alice.id)
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the instances re-register within a liveness tick
        try:
            tab, hello = await connect(
                two, alice, positions, recover=positions.recover()
            )
            break
        except (AssertionError, OSError):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.3)
    assert hello["recovery"][room]["epoch"] != positions.frames[-1]["epoch"]
    # Live events reach the new socket: no instance takes the routes it cached
    # before the restart for current ones (the routes' incarnation changed).
    await follow_unrecovered(tab, hello, room, positions, chat, started, 200)
