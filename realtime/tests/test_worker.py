"""The cleanup worker: its jobs on seeded state, a failing job, leadership moving to
another process when the leader is SIGKILLed, and a Redis restart under it."""

import asyncio
import os
import subprocess
import sys
import time

import pytest
from channels.db import database_sync_to_async

from notes import jobs as note_jobs
from notes import services as note_services
from realtime.hub import current_hub, stop_hub
from realtime.launcher import BASE_DIR, free_port
from realtime.state import TaskRecord, get_state
from realtime.worker import LOCK_NAME, Worker, registry, run_pass
from testing.cluster import ARTIFACTS, database_env
from testing.services import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)


async def _seed(user, *, dead_instance: bool) -> str:
    """State with one thing for every job to clean; returns the note's id."""
    state = get_state()
    note = await database_sync_to_async(note_services.note_create)(
        owner=user, title="n", content="hello"
    )
    # Opening the document stores its first update; nobody edits it now.
    await database_sync_to_async(note_services.document_updates)(note=note)
    await state.instance_refresh(instance_id="live", channel="c-live", ttl=30)
    await state.session_add(
        sid="s-live", user_id=user.id, instance_id="live", channel="c-live"
    )
    await state.usage_mark(model="m", sid="s-live", ttl=0.05)
    await state.room_join(room="doc_note:x", sid="s-live")
    await _forget_room(state, "s-live", "doc_note:x")
    await state.task_add(
        record=TaskRecord("t-gone", "chat-1", user.id, "gone", "c-gone", time.time())
    )
    if dead_instance:
        await state.instance_refresh(instance_id="dead", channel="c-dead", ttl=0.05)
        await state.session_add(
            sid="s-dead", user_id=user.id, instance_id="dead", channel="c-dead"
        )
    await asyncio.sleep(0.1)
    return note.id


async def _forget_room(state, sid, room) -> None:
    # A session record that lost a room its membership still lists (a partial write).
    if hasattr(state, "session_room_sets"):
        state.session_room_sets[sid].discard(room)
    else:
        await state.client().srem(f"{state.p}:s:{sid}:rooms", room)


async def test_one_pass_cleans_what_the_dry_run_announced(backend, make_user):
    user = await database_sync_to_async(make_user)("alice")
    redis = backend == "redis"
    note_id = await _seed(user, dead_instance=redis)
    expected = {
        "usage": 1,
        "instances": 1 if redis else 0,
        "documents": 1,
        "notes": 1,
        "tasks": 1,
    }
    planned = await run_pass(dry_run=True)
    assert {r.job: r.count for r in planned} == expected
    assert all(r.error is None for r in planned)
    assert "note " + note_id in planned[3].details[0]
    # A dry run changes nothing: the same plan again.
    assert {r.job: r.count for r in await run_pass(dry_run=True)} == expected
    done = await run_pass()
    assert {r.job: r.count for r in done} == expected
    assert {r.job: r.count for r in await run_pass()} == dict.fromkeys(expected, 0)
    state = get_state()
    assert await state.room_sessions(room="doc_note:x") == set()
    assert await state.task_list() == []
    assert (
        await database_sync_to_async(note_services.pending_update_count)(
            note_id=note_id
        )
        == 0
    )
    if redis:
        assert await state.session_get(sid="s-dead") is None


async def test_open_notes_below_the_threshold_do_not_starve_closed_ones(
    make_user, monkeypatch
):
    monkeypatch.setattr(note_jobs, "COMPACT_BATCH", 1)
    user = await database_sync_to_async(make_user)("alice")

    def note_with_log(title):
        note = note_services.note_create(owner=user, title=title, content=title)
        note_services.document_updates(note=note)  # the seed: a log of one
        return note.id

    ids = sorted([await database_sync_to_async(note_with_log)(t) for t in "ab"])
    opened, closed = ids  # the open one comes first in id order
    state = get_state()
    await state.instance_refresh(instance_id="live", channel="c-live", ttl=30)
    await state.session_add(
        sid="s-1", user_id=user.id, instance_id="live", channel="c-live"
    )
    await state.room_join(room=f"doc_note:{opened}", sid="s-1")
    done = await note_jobs.notes_compact(dry_run=False)
    assert done == [f"note {closed}: 1 updates"]
    assert await note_jobs.notes_compact(dry_run=False) == []


async def test_a_failing_job_is_logged_and_retried_and_the_worker_goes_on(
    monkeypatch, caplog
):
    calls = {"boom": 0, "after": 0}

    async def boom(*, dry_run):
        calls["boom"] += 1
        raise RuntimeError("disk on fire")

    async def after(*, dry_run):
        calls["after"] += 1
        return []

    monkeypatch.setattr(
        registry,
        "_jobs",
        {
            "boom": registry.Job(name="boom", run=boom, order=1),
            "after": registry.Job(name="after", run=after, order=2),
        },
    )
    worker = Worker(interval=0.05, lock_timeout=1)
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        deadline = time.monotonic() + 3
        while calls["after"] < 3:
            assert time.monotonic() < deadline, calls
            await asyncio.sleep(0.02)
        assert calls["boom"] >= 3 and not task.done()
        assert worker.leader
    finally:
        worker.stop()
        await asyncio.wait_for(task, 2)
    failures = [r for r in caplog.records if "worker job boom failed" in r.message]
    assert failures and failures[0].exc_info[1].args == ("disk on fire",)
    # Stopping released the lock: another worker takes it at once.
    assert await get_state().lock_owner(name=LOCK_NAME) == (None, 0.0)


# --- Several processes, and Redis restarts ------------------------------------------


def _start_worker(env: dict, log_name: str) -> subprocess.Popen:
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "realtime_worker"],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _seed_dead_instance(state, iid: str, user_id: int) -> None:
    await state.instance_refresh(instance_id=iid, channel=f"c-{iid}", ttl=0.05)
    await state.session_add(
        sid=f"s-{iid}", user_id=user_id, instance_id=iid, channel=f"c-{iid}"
    )


async def _gone(state, sid: str) -> bool:
    return await state.session_get(sid=sid) is None


@pytest.mark.redis
@pytest.mark.also_on_redis_cluster
async def test_leader_killed_another_takes_over_and_cleanup_goes_on(
    redis_settings, redis_prefix
):
    lock_timeout = 1.5
    env = {
        "REDIS_URL": redis_settings.REDIS_URL,
        "REDIS_CLUSTER": str(redis_settings.REDIS_CLUSTER).lower(),
        "REDIS_KEY_PREFIX": redis_prefix,
        "WORKER_INTERVAL": "0.2",
        "WORKER_LOCK_TIMEOUT": str(lock_timeout),
        "LOG_LEVEL": "INFO",
        **database_env(),
    }
    procs = [_start_worker(env, f"worker-{i}.log") for i in (1, 2)]
    state = get_state()
    try:
        owner, _ = await _until(lambda: _owner(state), 20, "no worker took the lock")
        by_pid = {str(p.pid): p for p in procs}
        leader = by_pid[owner.split("-")[-2]]
        (follower,) = [p for p in procs if p is not leader]
        await _seed_dead_instance(state, "ghost-1", 1)
        await _until(lambda: _gone(state, "s-ghost-1"), 5, "leader did not reap")

        leader.kill()  # SIGKILL: no release, the lock must expire
        leader.wait()
        killed = time.monotonic()
        await _seed_dead_instance(state, "ghost-2", 2)
        owner, _ = await _until(
            lambda: _owner(state, other_than=owner), lock_timeout + 3, "no takeover"
        )
        took = time.monotonic() - killed
        assert owner.split("-")[-2] == str(follower.pid)
        assert took <= lock_timeout + 0.5, took
        await _until(lambda: _gone(state, "s-ghost-2"), 5, "new leader did not reap")
        assert follower.poll() is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def _owner(state, other_than=None):
    owner, left = await state.lock_owner(name=LOCK_NAME)
    if owner is None or owner == other_than:
        return None
    return owner, left


PRIVATE_PORT = free_port()


@pytest.mark.redis
async def test_worker_survives_a_redis_restart(settings, redis_prefix):
    server = PrivateRedis(PRIVATE_PORT)
    await asyncio.to_thread(server.start)
    settings.REDIS_URL = f"redis://127.0.0.1:{PRIVATE_PORT}/0"
    settings.REDIS_KEY_PREFIX = redis_prefix
    worker = Worker(interval=0.1, lock_timeout=1.0)
    task = asyncio.get_running_loop().create_task(worker.run())
    state = get_state()
    try:
        await _until(lambda: _is(worker.leader), 5, "worker never led")
        await _seed_dead_instance(state, "ghost-1", 1)
        await _until(lambda: _gone(state, "s-ghost-1"), 3, "no reap before restart")
        passes = worker.passes

        server.kill()  # Redis dies with everything in it, the lock included
        await asyncio.sleep(1.2)  # longer than the lock timeout: leadership is lost
        assert not task.done()
        assert not worker.leader
        await asyncio.to_thread(server.start)

        await _until(lambda: _leads(state, worker), 10, "worker did not lead again")
        await _seed_dead_instance(state, "ghost-2", 2)
        await _until(lambda: _gone(state, "s-ghost-2"), 5, "no reap after restart")
        assert worker.passes > passes and not task.done()
    finally:
        worker.stop()
        await asyncio.wait_for(task, 3)
        await state.close()
        server.kill()


async def _is(value):
    return value


async def _leads(state, worker) -> bool:
    owner, _ = await state.lock_owner(name=LOCK_NAME)
    return worker.leader and owner == worker.owner


async def test_the_server_runs_the_worker_in_process(settings, ws, make_user):
    settings.WORKER_IN_PROCESS = True
    settings.WORKER_INTERVAL = 0.05
    user = await database_sync_to_async(make_user)("alice")
    await ws(user)  # the first socket starts the hub, and with it the worker
    hub = current_hub()
    await _until(
        lambda: _is(hub.worker.leader and hub.worker.passes >= 2), 3, "no passes"
    )
    await stop_hub()
    assert await get_state().lock_owner(name=LOCK_NAME) == (None, 0.0)
