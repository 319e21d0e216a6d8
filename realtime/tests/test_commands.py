"""The operator commands, on state seeded through real sockets and tasks in Redis."""

import asyncio
import io
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from realtime import tasks
from realtime.hub import current_hub
from realtime.state import get_state
from realtime.tests.test_worker import _seed
from testing.factories import users_create

# The commands run on one Redis and again on a Redis Cluster.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.also_on_redis_cluster,
]


async def command(*args) -> str:
    out = io.StringIO()
    await sync_to_async(call_command)(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.redis
async def test_inspect_text_and_json(redis_settings, ws):
    alice, bob = await users_create("alice", "bob")
    a = await ws(alice, join=True)
    b = await ws(bob)
    await a.call("usage", {"model": "llama3"})
    await a.call("heartbeat")
    hub = current_hub()
    await hub.join(hub.sessions[a.sid], "doc_note:n1")
    task_id = await tasks.create_task(asyncio.sleep(3600), "chat-9", user_id=alice.id)
    try:
        text = await command("realtime_inspect")
        assert f"Instances (1):\n  {hub.instance_id}  alive" in text
        assert "Sessions (2):" in text
        line_a = next(line for line in text.splitlines() if a.sid in line)
        assert f"user {alice.id} (alice)" in line_a
        assert "last seen -" not in line_a  # it sent a heartbeat
        assert "rooms doc_note:n1, presence, user:" in line_a
        line_b = next(line for line in text.splitlines() if b.sid in line)
        assert "last seen -" in line_b and f"rooms user:{bob.id}" in line_b
        assert f"Online users (2): {alice.id} (alice), {bob.id} (bob)" in text
        assert "  presence  1 sessions" in text
        assert f"Models in use (1):\n  llama3  1 sessions: {a.sid}" in text
        assert "Open documents (1):\n  doc_note:n1  1 sessions" in text
        assert f"  {task_id}  item chat-9  user {alice.id}" in text

        data = json.loads(await command("realtime_inspect", "--json"))
        assert data["models_in_use"] == {"llama3": [a.sid]}
        assert data["documents"] == {"doc_note:n1": 1}
        assert data["rooms"]["presence"] == 1
        assert [u["username"] for u in data["online_users"]] == ["alice", "bob"]
        assert [t["task_id"] for t in data["tasks"]] == [task_id]
        by_sid = {s["sid"]: s for s in data["sessions"]}
        assert by_sid[b.sid]["rooms"] == [f"user:{bob.id}"]
        assert by_sid[a.sid]["last_seen"] > 0 and by_sid[b.sid]["last_seen"] == 0
    finally:
        await tasks.stop_task(task_id)


@pytest.mark.redis
async def test_cleanup_dry_run_then_for_real(redis_settings):
    alice, _ = await users_create("alice", "bob")
    note_id = await _seed(alice, dead_instance=True)
    dry = await command("realtime_cleanup", "--dry-run")
    for job in ("usage", "instances", "documents", "notes", "tasks"):
        assert f"{job}: would clean 1\n" in dry
    assert "  usage mark m of session s-live" in dry
    assert "  instance dead\n" in dry
    assert "  session s-live from doc_note:x" in dry
    assert f"  note {note_id}: 1 updates" in dry
    assert "  task t-gone" in dry
    assert await command("realtime_cleanup", "--dry-run") == dry  # changed nothing
    done = await command("realtime_cleanup")
    assert done == dry.replace("would clean", "cleaned").replace(
        "  instance dead\n", "  instance dead: 1 sessions, 0 users offline\n"
    )
    again = await command("realtime_cleanup")
    assert again.splitlines() == [
        f"{job}: cleaned 0"
        for job in ("usage", "instances", "documents", "notes", "tasks")
    ]


@pytest.mark.redis
async def test_disconnect_a_user_or_a_session(redis_settings, ws):
    alice, bob = await users_create("alice", "bob")
    a1, a2 = await ws(alice), await ws(alice)
    b = await ws(bob)
    out = await command("realtime_disconnect", "--user", str(alice.id))
    assert out == f"disconnecting user {alice.id}: 2 sockets\n"
    assert await a1.closed_code() == 4401
    assert await a2.closed_code() == 4401
    assert await b.nothing()
    out = await command("realtime_disconnect", "--session", b.sid)
    assert out == f"disconnecting session {b.sid}\n"
    assert (await b.event("disconnect")) == {"reason": "disconnected by an operator"}
    assert await b.closed_code() == 4401
    with pytest.raises(CommandError, match="no such session: nope"):
        await command("realtime_disconnect", "--session", "nope")


@pytest.mark.redis
async def test_stop_a_task_or_an_items_tasks(redis_settings):
    one = await tasks.create_task(asyncio.sleep(3600), "chat-1")
    two = await tasks.create_task(asyncio.sleep(3600), "chat-2")
    three = await tasks.create_task(asyncio.sleep(3600), "chat-2")
    assert await command("realtime_stop_task", one) == f"stopped task {one}\n"
    out = await command("realtime_stop_task", "--item", "chat-2")
    assert out.splitlines() == [
        "stopped 2 tasks of item chat-2",
        *(f"  {tid}" for tid in sorted([two, three])),
    ]
    assert await get_state().task_list() == []
    with pytest.raises(CommandError, match="not found"):
        await command("realtime_stop_task", one)
    with pytest.raises(CommandError, match="give a TASK_ID or --item"):
        await command("realtime_stop_task")


async def test_commands_that_act_on_sockets_need_redis():
    with pytest.raises(CommandError, match="No REDIS_URL"):
        await command("realtime_disconnect", "--user", "1")
    with pytest.raises(CommandError, match="No REDIS_URL"):
        await command("realtime_stop_task", "abc")
