"""Resuming a generation from its stored position (chats/streams.py, realtime.history):
the stored content plus the deltas after its position is the final content."""

import asyncio
import random

import pytest
from channels.db import database_sync_to_async

from chats.emitter import get_event_emitter
from chats.models import Message
from chats.services import message_summary
from chats.streams import stream_for
from realtime import wire
from realtime.history import message_of
from realtime.rooms import user_room
from realtime.state import get_state
from testing.factories import chat_create

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored(chat, message_id) -> dict | None:
    found = Message.objects.select_related("chat").filter(
        chat=chat, message_id=message_id
    )
    return message_summary(found[0]) if found else None


async def _deltas_after(room: str, position: dict, message_id: str) -> list[dict]:
    """The events of the message after `position`, read from the room's window."""
    read = await get_state().history_read(
        room=room, epoch=position["epoch"], offset=position["offset"], limit=10_000
    )
    assert read.status == "ok", read
    events = []
    for offset, record in read.items:
        frame = wire.loads(message_of(room, read.epoch, offset, record)["frame"])
        data = frame["data"]
        if frame["event"] == "events" and data["message_id"] == message_id:
            events.append(data["data"])
    return events


def _apply(content: str, events: list[dict]) -> str:
    for event in events:
        kind, data = event["type"], event.get("data") or {}
        if kind in ("message", "chat:message:delta"):
            content += data.get("content", "")
        elif kind in ("replace", "chat:message"):
            content = data["content"]
        elif kind == "chat:completion" and data.get("content") is not None:
            content = data["content"]
    return content


async def test_stored_content_plus_later_deltas_is_the_final_content(
    backend, make_user, settings
):
    settings.STREAM_FLUSH_INTERVAL = 0.01  # many flushes, each a chance to be wrong
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    room = user_room(user.id)
    rng = random.Random(7)
    samples = []

    async def generate():
        await emit({"type": "status", "data": {"description": "thinking"}})
        for i in range(120):
            if i == 60:
                await emit({"type": "replace", "data": {"content": "restart:"}})
            await emit({"type": "message", "data": {"content": f"t{i} "}})
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() / 200)
        await emit({"type": "chat:completion", "data": {"done": True}})

    async def sample():
        # A page that loads the chat at a random moment mid-stream.
        while not done.is_set():
            summary = await stored(chat, "m1")
            if summary is not None:
                assert summary["position"] is not None
                samples.append(summary)
            await asyncio.sleep(rng.random() / 100)

    done = asyncio.Event()
    sampler = asyncio.create_task(sample())
    await generate()
    done.set()
    await sampler
    final = (await stored(chat, "m1"))["content"]
    assert final.startswith("restart:t60 ") and final.endswith("t119 ")
    assert len(samples) > 10
    contents = {s["content"] for s in samples}
    assert len(contents) > 5, "the samples never caught the stream midway"
    for summary in samples:
        position = summary["position"]
        assert position["room"] == room
        events = await _deltas_after(room, position, "m1")
        assert _apply(summary["content"], events) == final, position


async def test_a_new_message_is_stored_at_the_rooms_position(backend, make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    first = get_event_emitter(user.id, chat.id, "m1")
    await first({"type": "message", "data": {"content": "one"}})
    await first({"type": "chat:completion", "data": {"done": True}})
    second = get_event_emitter(user.id, chat.id, "m2")
    await second({"type": "status", "data": {"description": "x"}})
    summary = await stored(chat, "m2")
    # Its status event is the room's third event: stored, so the position covers it.
    assert summary["position"]["offset"] == 3
    assert summary["status_history"] == [{"description": "x"}]
    top = await get_state().history_top(rooms=[user_room(user.id)])
    assert top[user_room(user.id)][1] == 3


async def test_a_piece_whose_emit_was_cancelled_still_gets_its_position(
    backend, make_user
):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "message", "data": {"content": "one "}})
    sending = asyncio.create_task(emit({"type": "message", "data": {"content": "two"}}))
    for _ in range(50):  # until it waits on the outbox, stored and not yet sent
        await asyncio.sleep(0)
        if stream_for(chat_id=chat.id, message_id="m1").pending[-1:] and (
            stream_for(chat_id=chat.id, message_id="m1").pending[-1][0] == "two"
        ):
            break
    sending.cancel()
    await asyncio.sleep(0.2)  # the outbox sends it all the same
    await emit.flush()
    summary = await stored(chat, "m1")
    room = user_room(user.id)
    top = (await get_state().history_top(rooms=[room]))[room]
    assert summary["content"] == "one two"
    # Its event was sent (the room's last), and the stored position covers it: a
    # page resuming from here gets no "two" again.
    assert (summary["position"]["epoch"], summary["position"]["offset"]) == top
