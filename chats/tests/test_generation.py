"""A generation records how it ended, whoever or whatever ended it: done, stopped by
the user, an operator or a shutdown, or failed; in the message and in its last
event."""

import asyncio
import io

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.management import call_command

from chats import generation
from chats.generation import generation_run
from chats.models import Message
from realtime import tasks
from testing.factories import chat_create

pytestmark = pytest.mark.django_db(transaction=True)


async def start(user, chat, **kwargs) -> str:
    """A long fake-model answer as a task; returns the task id."""
    coro = generation_run(
        user_id=user.id,
        chat_id=chat.id,
        message_id="m1",
        prompt="tell me",
        tokens=kwargs.get("tokens", 1000),
        tokens_per_second=kwargs.get("tps", 200),
    )
    return await tasks.create_task(coro, chat.id, user_id=user.id)


async def events_until_end(tab) -> list[dict]:
    """The answer's events up to the last one (completion or cancel)."""
    seen = []
    while not seen or seen[-1]["type"] not in ("chat:completion", "chat:tasks:cancel"):
        seen.append((await tab.event("events", timeout=5))["data"])
    return seen


async def streamed(tab, n: int) -> list[dict]:
    """Wait until n tokens were streamed; returns the events so far."""
    seen = []
    while sum(e["type"] == "message" for e in seen) < n:
        seen.append((await tab.event("events", timeout=5))["data"])
    return seen


@database_sync_to_async
def stored(chat) -> Message:
    return Message.objects.get(chat=chat, message_id="m1")


async def test_a_completed_answer_is_done(ws, make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    await start(user, chat, tokens=3, tps=500)
    assert (await events_until_end(tab))[-1]["type"] == "chat:completion"
    await asyncio.sleep(0.05)
    message = await stored(chat)
    assert (message.state, message.stop_reason, message.done) == ("done", "", True)


@pytest.mark.parametrize(
    "stop, reason",
    [
        (lambda task_id: tasks.stop_task(task_id), "user"),
        (lambda task_id: tasks.stop_task(task_id, reason="admin"), "admin"),
        (lambda task_id: tasks.stop_all_local(), "shutdown"),
    ],
    ids=["user", "admin", "shutdown"],
)
async def test_a_stopped_answer_records_who_stopped_it(ws, make_user, stop, reason):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    task_id = await start(user, chat)
    seen = await streamed(tab, 5)
    await stop(task_id)
    seen += await events_until_end(tab)
    assert seen[-1] == {
        "type": "chat:tasks:cancel",
        "data": {"state": "stopped", "reason": reason},
    }
    message = await stored(chat)
    assert (message.state, message.stop_reason, message.done) == (
        "stopped",
        reason,
        False,
    )
    # What was streamed is kept.
    pieces = [e["data"]["content"] for e in seen if e["type"] == "message"]
    assert message.content == "".join(pieces)


async def test_a_failed_answer_records_the_error(ws, make_user, monkeypatch):
    async def breaks_midway(emit, **kwargs):
        await emit({"type": "message", "data": {"content": "half "}})
        raise RuntimeError("the model broke")

    monkeypatch.setattr(generation, "fake_generate", breaks_midway)
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    await start(user, chat)
    assert (await events_until_end(tab))[-1] == {
        "type": "chat:tasks:cancel",
        "data": {"state": "failed", "reason": "error"},
    }
    message = await stored(chat)
    assert (message.state, message.stop_reason, message.content) == (
        "failed",
        "error",
        "half ",
    )


@pytest.mark.redis
async def test_a_stop_from_the_operator_command_says_admin(
    redis_settings, ws, make_user
):
    # manage.py realtime_stop_task runs its own event loop: the stop travels to
    # this loop's hub as a task.stop layer message, with its reason.
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    task_id = await start(user, chat)
    await streamed(tab, 3)
    await sync_to_async(call_command)(
        "realtime_stop_task", task_id, stdout=io.StringIO()
    )
    assert (await events_until_end(tab))[-1]["data"] == {
        "state": "stopped",
        "reason": "admin",
    }
    message = await stored(chat)
    assert (message.state, message.stop_reason) == ("stopped", "admin")


def test_every_task_stop_reason_is_a_message_stop_reason():
    # generation_run stores tasks.stop_reason() as the message's stop_reason.
    assert tasks.STOP_REASONS <= set(Message.StopReason.values)
    assert set(Message.StopReason.values) - tasks.STOP_REASONS == {"error"}
