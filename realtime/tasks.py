"""Distributed tasks: run here, listed and stoppable from any instance.

A task runs as an asyncio task in the process that created it; its record (item,
owner, instance) is in shared state. `stop_task` sends `task.stop` to the owning
instance's layer channel, whose hub cancels it: no Redis pub/sub connection whose
reads a socket timeout could end, and the receive loop reconnects with backoff after
a Redis restart. A finished task removes its record; a dead instance's records are
removed when it is reaped.
"""

import asyncio
import contextvars
import logging
import time
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer

from realtime import events
from realtime.hub import get_hub
from realtime.layer import TaskStop, on_layer
from realtime.loops import per_loop
from realtime.state import TaskRecord, get_state

log = logging.getLogger(__name__)

# How long task_stop waits for a remote instance to confirm the task ended, and how
# often it looks (the record goes when the task has ended).
STOP_CONFIRM_SECONDS = 5.0
STOP_POLL_SECONDS = 0.05

# Who stopped a task; its coroutine reads it with stop_reason() while it is being
# cancelled (a generation stores it on its message).
STOPPED_BY_USER = "user"  # the task's owner, e.g. over REST
STOPPED_BY_ADMIN = "admin"  # an operator: manage.py realtime_stop_task
STOPPED_BY_SHUTDOWN = "shutdown"  # its server stopping (ASGI lifespan)
STOP_REASONS = frozenset({STOPPED_BY_USER, STOPPED_BY_ADMIN, STOPPED_BY_SHUTDOWN})

# This loop's running tasks, and their records: task id -> asyncio task, record.
_tasks_here = per_loop(dict)
_records_here = per_loop(dict)

# Why each task being stopped is stopped (set just before it is cancelled).
_stop_reasons: "weakref.WeakKeyDictionary[asyncio.Task, str]" = (
    weakref.WeakKeyDictionary()
)


def stop_reason() -> str | None:
    """Who is stopping the current task (a STOPPED_BY_* value), or None if nobody
    stopped it through this module (e.g. its event loop is closing)."""
    task = asyncio.current_task()
    return _stop_reasons.get(task) if task is not None else None


def local_records() -> list[TaskRecord]:
    """Records of the tasks running here (re-registered if Redis lost them)."""
    return list(_records_here().values())


@events.on_reregister
async def reregister_tasks(state) -> None:
    """This instance's liveness lapsed: write its running tasks' records again."""
    for record in local_records():
        await state.task_add(record=record)


async def create_task(
    coro: Coroutine[Any, Any, Any], item_id: str, *, user_id: int | None = None
) -> str:
    """Run a coroutine as a task any instance can list and stop; returns its id."""
    hub = await get_hub()
    task_id = str(uuid.uuid4())
    record = TaskRecord(
        task_id=task_id,
        item_id=str(item_id),
        user_id=user_id,
        instance_id=hub.instance_id,
        channel=hub.channel,
        created_at=time.time(),
    )
    await get_state().task_add(record=record)
    # A fresh context: a task started from a request (e.g. a sync view through
    # async_to_sync) must not inherit asgiref's binding to that request's thread,
    # whose executor is gone once the response is sent.
    task = asyncio.get_running_loop().create_task(
        _run(task_id, coro), context=contextvars.Context()
    )
    # A task stopped before it first ran never enters _run: close its coroutine.
    task.add_done_callback(lambda _: coro.close())
    _tasks_here()[task_id] = task
    records = _records_here()
    records[task_id] = record
    task.add_done_callback(lambda _: records.pop(task_id, None))
    return task_id


async def _run(task_id: str, coro: Coroutine) -> Any:
    try:
        return await coro
    except asyncio.CancelledError:
        log.info("task %s stopped", task_id)
        raise
    except Exception:
        log.exception("task %s failed", task_id)
    finally:
        _tasks_here().pop(task_id, None)
        try:
            await asyncio.shield(get_state().task_remove(task_id=task_id))
        except Exception:
            log.warning("could not remove the record of task %s", task_id)


async def list_tasks(*, user_id: int | None = None) -> list[TaskRecord]:
    """Running tasks on every instance (of one user, if given)."""
    tasks = await get_state().task_list()
    return [t for t in tasks if user_id is None or t.user_id == user_id]


async def list_task_ids_by_item_id(item_id: str) -> list[str]:
    """Ids of the running tasks of an item (e.g. a chat)."""
    return sorted(await get_state().task_ids_for_item(item_id=str(item_id)))


async def get_task(task_id: str) -> TaskRecord | None:
    """The record of a running task."""
    return await get_state().task_get(task_id=task_id)


async def stop_task(task_id: str, *, reason: str = STOPPED_BY_USER) -> bool:
    """Stop a task wherever it runs; True once it has ended, False if unknown."""
    assert reason in STOP_REASONS, reason
    record = await get_state().task_get(task_id=task_id)
    if record is None:
        return False
    if await stop_local(task_id, reason=reason):
        return True
    stop: TaskStop = {"type": "task.stop", "task_id": task_id, "reason": reason}
    await get_channel_layer().send(record.channel, stop)
    deadline = time.monotonic() + STOP_CONFIRM_SECONDS
    while time.monotonic() < deadline:
        if await get_state().task_get(task_id=task_id) is None:
            return True
        await asyncio.sleep(STOP_POLL_SECONDS)
    log.warning("task %s did not confirm its stop", task_id)
    return False


async def stop_item_tasks(item_id: str, *, reason: str = STOPPED_BY_USER) -> list[str]:
    """Stop every task of an item; returns the ids that were stopped."""
    stopped = []
    for task_id in await list_task_ids_by_item_id(item_id):
        if await stop_task(task_id, reason=reason):
            stopped.append(task_id)
    return stopped


async def stop_local(task_id: str, *, reason: str = STOPPED_BY_USER) -> bool:
    """Cancel a task of this process and wait for it to end; False if not here."""
    task = _tasks_here().get(task_id)
    if task is None:
        return False
    _stop_reasons.setdefault(task, reason)  # the first stop says who stopped it
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # _run's cleanup does not run for a task cancelled before it started.
    _tasks_here().pop(task_id, None)
    await get_state().task_remove(task_id=task_id)
    return True


async def stop_all_local() -> int:
    """Cancel every task of this process (graceful shutdown); returns how many."""
    ids = list(_tasks_here())
    for task_id in ids:
        await stop_local(task_id, reason=STOPPED_BY_SHUTDOWN)
    return len(ids)


@on_layer("task.stop")
def task_stop(hub, message: TaskStop) -> None:
    """Stop a task of this instance. Not awaited: a slow-to-stop task must not hold
    up the inbox. (An instance of an older release sends no reason.)"""
    reason = message.get("reason", STOPPED_BY_USER)
    hub.spawn(stop_local(message["task_id"], reason=reason))
