"""The state store on a real Redis Cluster (3 primaries, 3 replicas): every script
runs there without touching a key outside its slot, and the keys spread as the key
layout of realtime/state/redis/__init__.py says."""

import time
import uuid

import pytest

from realtime.state import RedisState, TaskRecord
from realtime.state.redis import scripts

pytestmark = pytest.mark.redis

ROOMS = 200  # enough rooms that their history lands on every primary


@pytest.fixture
async def store(redis_cluster):
    prefix = f"rt-test-{uuid.uuid4().hex[:10]}"
    cluster_store = RedisState(url=redis_cluster.url, cluster=True, prefix=prefix)
    yield cluster_store
    await cluster_store.flush()
    await cluster_store.close()


async def exercise(store: RedisState) -> None:
    """Every operation of the store that runs a script, over many rooms."""
    rooms = [f"chat:{n}" for n in range(ROOMS)] + ["odd}room", "{braced}"]
    await store.instance_refresh(instance_id="i1", channel="c1", ttl=30)
    await store.instance_refresh(instance_id="i2", channel="c2", ttl=0.05)
    await store.session_register(
        sid="s1", user_id=1, instance_id="i1", channel="c1", room="user:1", route=True
    )
    await store.session_add(sid="s2", user_id=2, instance_id="i2", channel="c2")
    await store.session_touch(sid="s1")
    for room in rooms[:20]:
        await store.room_join(room=room, sid="s1")
    await store.room_leave(room=rooms[0], sid="s1")
    await store.room_prune(room=rooms[1], dry_run=True)
    await store.presence_claim(interval=1)
    record = TaskRecord("t1", "chat-1", 1, "i1", "c1", time.time())
    await store.task_add(record=record)
    await store.task_remove(task_id="t1")
    await store.task_add(record=TaskRecord("t2", "chat-2", 2, "i2", "c2", time.time()))
    await store.usage_mark(model="m", sid="s1", ttl=0.01)
    await store.usage_claim(interval=1)
    time.sleep(0.06)
    await store.usage_expire()
    await store.lock_acquire(name="worker", owner="i1", ttl=5)
    await store.lock_renew(name="worker", owner="i1", ttl=5)
    await store.lock_release(name="worker", owner="i1")
    positions, _ = await store.history_publish(
        appends=[(room, '{"n":1}') for room in rooms] + [(rooms[5], '{"n":2}')],
        rooms=rooms,
    )
    assert len(positions) == len(rooms) + 1
    tops = await store.history_top(rooms=rooms)
    assert tops[rooms[5]][1] == 2 and tops["odd}room"][1] == 1
    read = await store.history_read(
        room=rooms[5], epoch=tops[rooms[5]][0], offset=0, limit=10
    )
    assert [offset for offset, _ in read.items] == [1, 2]
    await store.reap_dead_instances()  # i2's liveness lapsed: reaps s2 and t2
    await store.session_remove(sid="s1")


async def test_every_script_runs_on_the_cluster_within_its_slot(store, monkeypatch):
    # A script that touched a key of another slot would fail here: Redis Cluster
    # refuses it ("Script attempted to access keys that do not hash to the same
    # slot"), and a script whose KEYS span slots gets CROSSSLOT.
    ran: set[str] = set()
    real_run, real_queue = scripts.run, scripts.queue

    async def run(client, script, keys, *args):
        ran.add(script.sha)
        return await real_run(client, script, keys, *args)

    def queue(pipe, script, keys, *args):
        ran.add(script.sha)
        real_queue(pipe, script, keys, *args)

    monkeypatch.setattr(scripts, "run", run)
    monkeypatch.setattr(scripts, "queue", queue)
    await exercise(store)
    assert await store.session_list() == []
    assert await store.task_list() == []
    missing = [s.source.strip()[:60] for s in scripts.SCRIPTS if s.sha not in ran]
    assert missing == []


async def test_history_spreads_over_every_primary_and_membership_is_one_slot(
    store, redis_cluster
):
    await store.session_add(sid="s1", user_id=1, instance_id="i1", channel="c1")
    await store.history_publish(
        appends=[(f"chat:{n}", "{}") for n in range(ROOMS)], rooms=[]
    )
    history = redis_cluster.keys_per_primary(f"{store.hp}:h*")
    assert len(history) == 3 and all(n > 0 for n in history.values()), history
    assert sum(history.values()) == 2 * ROOMS  # a meta hash and a list per room
    membership = redis_cluster.keys_per_primary(f"{store.p}:*")
    assert sorted(membership.values())[:2] == [0, 0], membership
    assert await store.room_counts() == {}


@pytest.mark.parametrize("on_cluster", [False, True], ids=["redis", "redis_cluster"])
async def test_new_state_connections_never_look_the_client_version_up(
    on_cluster, redis_cluster, monkeypatch
):
    # redis-py would call importlib.metadata.version per connection (0.75 ms each).
    import importlib.metadata

    from testing.services import REDIS_TEST_URL

    looked_up = []
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: looked_up.append(name) or real(name)
    )
    url = redis_cluster.url if on_cluster else REDIS_TEST_URL
    store = RedisState(
        url=url, cluster=on_cluster, prefix=f"rt-test-{uuid.uuid4().hex}"
    )
    try:
        await store.session_add(sid="s", user_id=1, instance_id="i", channel="c")
        await store.flush()
    finally:
        await store.close()
    assert looked_up == []
