"""The event emitter: delivery to every session, persistence by type, write counts."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chats.emitter import get_event_emitter
from chats.generation import generation_run
from chats.models import Chat, Message
from realtime import tasks
from realtime.errors import EventError
from testing.factories import chat_create

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def message_of(chat, message_id) -> Message:
    return Message.objects.get(chat=chat, message_id=message_id)


@database_sync_to_async
def chat_of(chat_id) -> Chat:
    return Chat.objects.get(pk=chat_id)


async def test_every_event_type_is_persisted(ws, make_user, settings):
    settings.STREAM_FLUSH_INTERVAL = 10  # only other events and done flush here
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    status = {"action": "web_search", "description": "Searching", "done": False}
    source = {"source": {"name": "Doc"}, "document": ["text"], "metadata": [{}]}
    await emit({"type": "status", "data": status})
    await emit({"type": "message", "data": {"content": "Hel"}})
    await emit({"type": "chat:message:delta", "data": {"content": "lo"}})
    await emit({"type": "embeds", "data": {"embeds": ["<iframe/>"]}})
    await emit({"type": "files", "data": {"files": [{"name": "a.txt"}]}})
    await emit({"type": "source", "data": source})
    await emit({"type": "citation", "data": {"type": "code_execution", "id": 1}})
    await emit({"type": "citation", "data": {"source": {"name": "Cite"}}})
    await emit({"type": "chat:title", "data": "Greeting"})
    await emit({"type": "chat:tags", "data": ["intro", "demo"]})
    message = await message_of(chat, "m1")
    assert message.content == "Hello"  # flushed before the embeds event
    assert message.status_history == [status]
    assert message.embeds == ["<iframe/>"]
    assert message.files == [{"name": "a.txt"}]
    assert message.sources == [source, {"source": {"name": "Cite"}}]
    chat_row = await chat_of(chat.id)
    assert (chat_row.title, chat_row.tags) == ("Greeting", ["intro", "demo"])

    await emit({"type": "replace", "data": {"content": "Replaced"}})
    await emit({"type": "chat:message", "data": {"content": "Again"}})
    await emit({"type": "message", "data": {"content": " and more"}})
    assert (await message_of(chat, "m1")).content == "Again"  # delta still buffered
    await emit({"type": "chat:completion", "data": {"done": True, "title": "Final"}})
    message = await message_of(chat, "m1")
    assert (message.content, message.done) == ("Again and more", True)
    # chat:title renamed it, so the answer's title does not (see the next test).
    assert (await chat_of(chat.id)).title == "Greeting"


@pytest.mark.parametrize(
    "title, kept", [("New Chat", False), ("First chat", True)], ids=["default", "own"]
)
async def test_an_answers_title_names_only_a_chat_with_the_default_title(
    make_user, title, kept
):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user, title=title)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "chat:completion", "data": {"done": True, "title": "Answer"}})
    assert (await chat_of(chat.id)).title == (title if kept else "Answer")
    # An explicit chat:title always renames.
    await emit({"type": "chat:title", "data": "Renamed"})
    assert (await chat_of(chat.id)).title == "Renamed"


async def test_completion_content_is_the_final_content(make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "message", "data": {"content": "draft"}})
    await emit({"type": "chat:completion", "data": {"done": True, "content": "final"}})
    message = await message_of(chat, "m1")
    assert (message.content, message.done) == ("final", True)


async def test_events_reach_every_session_with_only_the_new_text(ws, make_user):
    user = await database_sync_to_async(make_user)()
    other = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab1, tab2, stranger = await ws(user), await ws(user), await ws(other)
    emit = get_event_emitter(user.id, chat.id, "m1")
    for piece in ["a", "bb", "ccc"]:
        await emit({"type": "message", "data": {"content": piece}})
    for tab in (tab1, tab2):
        for piece in ["a", "bb", "ccc"]:
            assert await tab.event("events") == {
                "chat_id": chat.id,
                "message_id": "m1",
                "data": {"type": "message", "data": {"content": piece}},
            }
    assert await stranger.nothing(0.3)


@pytest.mark.parametrize("chat_id, persist", [("local:abc", True), (None, False)])
async def test_local_chats_and_persist_false_are_emitted_never_stored(
    ws, make_user, chat_id, persist
):
    user = await database_sync_to_async(make_user)()
    chat_id = chat_id or (await chat_create(user)).id
    tab = await ws(user)
    emit = get_event_emitter(user.id, chat_id, "m1", persist=persist)
    await emit({"type": "message", "data": {"content": "x"}})
    await emit({"type": "chat:completion", "data": {"done": True, "content": "x"}})
    assert (await tab.event("events"))["data"]["data"] == {"content": "x"}
    count = await database_sync_to_async(Message.objects.count)()
    assert count == 0


async def test_someone_elses_chat_is_refused_and_nothing_is_sent(ws, make_user):
    owner = await database_sync_to_async(make_user)()
    intruder = await database_sync_to_async(make_user)()
    chat = await chat_create(owner)
    owner_tab, intruder_tab = await ws(owner), await ws(intruder)
    emit = get_event_emitter(intruder.id, chat.id, "m1")
    with pytest.raises(EventError) as raised:
        await emit({"type": "message", "data": {"content": "hijack"}})
    assert raised.value.code == "not_found"
    assert await owner_tab.nothing(0.2) and await intruder_tab.nothing(0.1)
    assert await database_sync_to_async(Message.objects.count)() == 0


@pytest.mark.parametrize(
    "event",
    [
        "message",
        {"data": {}},
        {"type": 5},
        {"type": "message", "data": {"content": 5}},
        {"type": "embeds", "data": {"embeds": "x"}},
        {"type": "chat:title", "data": {"title": 3}},
        {"type": "chat:tags", "data": "a,b"},
        {"type": "chat:completion", "data": "done"},
        {"type": "chat:tasks:cancel", "data": "now"},
        {"type": "chat:tasks:cancel", "data": {"state": "done"}},
        {"type": "chat:tasks:cancel", "data": {"reason": "boredom"}},
    ],
)
async def test_malformed_events_are_bad_request(make_user, event):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    with pytest.raises(EventError) as raised:
        await emit(event)
    assert raised.value.code == "bad_request"


async def test_deltas_are_written_at_most_once_per_flush_interval(
    make_user, settings, message_writes
):
    settings.STREAM_FLUSH_INTERVAL = 0.1
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "message", "data": {"content": ""}})  # creates the row
    writes_before = message_writes.n
    loop = asyncio.get_running_loop()
    start = loop.time()
    pieces = [f"t{i} " for i in range(50)]
    for piece in pieces:
        await emit({"type": "message", "data": {"content": piece}})
        await asyncio.sleep(0.02)
    await emit({"type": "chat:completion", "data": {"done": True}})
    duration = loop.time() - start
    writes = message_writes.n - writes_before
    assert 2 <= writes <= duration / settings.STREAM_FLUSH_INTERVAL + 2, (
        writes,
        duration,
    )
    message = await message_of(chat, "m1")
    assert message.content == "".join(pieces) and message.done


async def test_stopping_a_generation_keeps_what_was_streamed(ws, make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    coro = generation_run(
        user_id=user.id,
        chat_id=chat.id,
        message_id="m1",
        prompt="tell me",
        tokens=500,
        tokens_per_second=100,
    )
    task_id = await tasks.create_task(coro, chat.id, user_id=user.id)
    received = []
    while len(received) < 10:
        event = (await tab.event("events"))["data"]
        if event["type"] == "message":
            received.append(event["data"]["content"])
    assert await tasks.stop_task(task_id) is True
    kinds = []
    while "chat:tasks:cancel" not in kinds:
        event = (await tab.event("events"))["data"]
        kinds.append(event["type"])
        if event["type"] == "message":
            received.append(event["data"]["content"])
    message = await message_of(chat, "m1")
    assert message.content == "".join(received)
    assert message.done is False
    assert await tasks.list_tasks() == []


async def test_malformed_events_are_refused_before_sending_even_when_not_stored(
    ws, make_user
):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    emit = get_event_emitter(user.id, "local:scratch", "m1")
    with pytest.raises(EventError):
        await emit({"type": "message", "data": {"content": 5}})
    assert await tab.nothing(0.2)


async def test_a_failed_write_keeps_the_text_for_the_next_flush(make_user, monkeypatch):
    from chats import services

    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "message", "data": {"content": "kept "}})
    real_append = services.message_append
    calls = {"n": 0}

    def failing_once(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real_append(**kwargs)

    monkeypatch.setattr(services, "message_append", failing_once)
    with pytest.raises(RuntimeError):
        await emit.flush()
    await emit({"type": "message", "data": {"content": "and more"}})
    await emit({"type": "chat:completion", "data": {"done": True}})
    assert (await message_of(chat, "m1")).content == "kept and more"


async def test_events_that_are_not_stored_create_no_message_row(make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    await emit({"type": "notification", "data": {"type": "info", "content": "hi"}})
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_a_cancel_ends_the_message_but_never_undoes_a_completion(make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    stopped = get_event_emitter(user.id, chat.id, "m1")
    await stopped({"type": "message", "data": {"content": "part"}})
    await stopped({"type": "chat:tasks:cancel", "data": {}})  # as Open WebUI sends it
    message = await message_of(chat, "m1")
    assert (message.content, message.state, message.stop_reason) == (
        "part",
        "stopped",
        "",
    )
    completed = get_event_emitter(user.id, chat.id, "m2")
    await completed({"type": "chat:completion", "data": {"done": True}})
    await completed({"type": "chat:tasks:cancel", "data": {"reason": "user"}})
    assert (await message_of(chat, "m2")).state == "done"


@pytest.mark.parametrize(
    "kinds",
    [
        ["user", "channel"],
        pytest.param(
            [],
            marks=pytest.mark.xfail(
                strict=False,
                reason="server bug found by bench.stream with HISTORY_ROOM_KINDS= "
                "(1.0 DB writes per message instead of ~18): without history no "
                "piece is ever placed (MessageStream.place(None) is a no-op), and "
                "the periodic writer stores only placed pieces, so streamed text "
                "reaches the database only at the end of the message",
            ),
        ),
    ],
    ids=["history", "no-history"],
)
async def test_streamed_text_is_stored_while_it_streams(make_user, settings, kinds):
    settings.HISTORY_ROOM_KINDS = kinds
    settings.STREAM_FLUSH_INTERVAL = 0.05
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    emit = get_event_emitter(user.id, chat.id, "m1")
    for piece in ("Hel", "lo"):
        await emit({"type": "message", "data": {"content": piece}})
    await asyncio.sleep(0.5)  # ten flush intervals, the message not done
    assert (await message_of(chat, "m1")).content == "Hello"
