"""Distributed tasks in one process (across processes: chats/tests/test_cluster)."""

import asyncio

import pytest
import redis

from realtime import tasks
from testing.services import REDIS_TEST_URL


async def test_create_list_and_finish(backend):
    done = asyncio.Event()

    async def work():
        await done.wait()
        return 42

    task_id = await tasks.create_task(work(), "chat-1", user_id=7)
    [record] = await tasks.list_tasks()
    assert (record.task_id, record.item_id, record.user_id) == (task_id, "chat-1", 7)
    assert await tasks.list_task_ids_by_item_id("chat-1") == [task_id]
    assert await tasks.list_tasks(user_id=8) == []
    done.set()
    await asyncio.sleep(0.05)
    assert await tasks.list_tasks() == []
    assert await tasks.list_task_ids_by_item_id("chat-1") == []


async def test_stop_cancels_and_unknown_is_false(backend):
    cancelled = asyncio.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task_id = await tasks.create_task(forever(), "chat-2")
    await asyncio.sleep(0)  # let it start
    assert await tasks.stop_task(task_id) is True
    assert cancelled.is_set()
    assert await tasks.stop_task(task_id) is False
    assert await tasks.get_task(task_id) is None


async def test_stopping_a_task_before_it_ran_leaves_no_record(backend):
    task_id = await tasks.create_task(asyncio.sleep(3600), "chat-7")
    assert await tasks.stop_task(task_id) is True
    assert await tasks.list_tasks() == []


async def test_stop_item_tasks(backend):
    ids = [await tasks.create_task(asyncio.sleep(3600), "chat-3") for _ in range(2)]
    other = await tasks.create_task(asyncio.sleep(3600), "chat-4")
    assert sorted(await tasks.stop_item_tasks("chat-3")) == sorted(ids)
    assert [t.task_id for t in await tasks.list_tasks()] == [other]
    await tasks.stop_task(other)


async def test_failing_task_is_logged_and_removed(backend, caplog):
    async def boom():
        raise RuntimeError("kaput")

    task_id = await tasks.create_task(boom(), "chat-5")
    await asyncio.sleep(0.05)
    assert await tasks.get_task(task_id) is None
    assert any("failed" in r.message and task_id in r.message for r in caplog.records)


@pytest.mark.redis
async def test_finished_tasks_leave_no_keys(redis_settings, redis_prefix):
    task_id = await tasks.create_task(asyncio.sleep(0.01), "chat-6", user_id=1)
    stopped = await tasks.create_task(asyncio.sleep(3600), "chat-6", user_id=1)
    await tasks.stop_task(stopped)
    await asyncio.sleep(0.1)
    client = redis.Redis.from_url(REDIS_TEST_URL, decode_responses=True)
    keys = [k for k in client.scan_iter(f"{{{redis_prefix}}}:*")]
    client.close()
    leftovers = [k for k in keys if "task" in k or ":t:" in k or task_id in k]
    assert leftovers == []
