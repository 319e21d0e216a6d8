"""Both state stores keep the same semantics (memory: one process; Redis: a fleet)."""

import ast
import asyncio
import inspect
import uuid
from pathlib import Path

import pytest

from realtime import settings as realtime_settings
from realtime.launcher import free_port
from realtime.state import MemoryState, RedisState, StateStore
from realtime.state import memory as memory_backend
from realtime.state import redis as redis_backend
from realtime.state.base import CONCERNS
from testing.services import REDIS_TEST_URL, PrivateRedis


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis),
    ]
)
async def store(request):
    if request.param == "memory":
        yield MemoryState()
        return
    prefix = f"rt-test-{uuid.uuid4().hex[:10]}"
    if request.param == "redis_cluster":
        nodes = request.getfixturevalue("redis_cluster")
        redis_store = RedisState(url=nodes.url, cluster=True, prefix=prefix)
    else:
        redis_store = RedisState(url=REDIS_TEST_URL, prefix=prefix)
    yield redis_store
    await redis_store.flush()
    await redis_store.close()


async def test_first_session_brings_user_online_and_last_takes_them_off(store):
    assert (
        await store.session_add(sid="s1", user_id=1, instance_id="i1", channel="c1")
        is True
    )
    assert (
        await store.session_add(sid="s2", user_id=1, instance_id="i2", channel="c2")
        is False
    )
    assert await store.online_user_ids() == {1}
    assert await store.user_sessions(user_id=1) == {"s1", "s2"}
    removed = await store.session_remove(sid="s1")
    assert (removed.user_id, removed.went_offline) == (1, False)
    removed = await store.session_remove(sid="s2")
    assert removed.went_offline is True
    assert await store.online_user_ids() == set()
    assert await store.session_remove(sid="s2") is None


async def test_session_record(store):
    await store.session_add(sid="s1", user_id=7, instance_id="i1", channel="chan!x")
    record = await store.session_get(sid="s1")
    assert (record.user_id, record.instance_id, record.channel) == (7, "i1", "chan!x")
    assert record.connected_at > 0
    assert await store.session_get(sid="nope") is None


async def test_rooms_track_sessions_and_users(store):
    await store.session_add(sid="a1", user_id=1, instance_id="i1", channel="c")
    await store.session_add(sid="a2", user_id=1, instance_id="i1", channel="c")
    await store.session_add(sid="b1", user_id=2, instance_id="i2", channel="c")
    assert await store.room_join(room="channel:9", sid="a1") is True
    assert await store.room_join(room="channel:9", sid="a1") is False
    await store.room_join(room="channel:9", sid="a2")
    await store.room_join(room="channel:9", sid="b1")
    assert await store.room_sessions(room="channel:9") == {"a1", "a2", "b1"}
    assert await store.room_user_ids(room="channel:9") == {1, 2}
    assert await store.session_rooms(sid="a1") == {"channel:9"}
    assert await store.room_leave(room="channel:9", sid="a1") is True
    assert await store.room_leave(room="channel:9", sid="a1") is False
    assert await store.room_user_ids(room="channel:9") == {1, 2}  # a2 still there
    removed = await store.session_remove(sid="a2")
    assert removed.rooms == ["channel:9"]
    assert await store.room_user_ids(room="channel:9") == {2}
    assert await store.room_sessions(room="channel:9") == {"b1"}


async def test_session_register_is_add_route_and_join_together(store):
    registered = await store.session_register(
        sid="s1", user_id=3, instance_id="i1", channel="c1", room="user:3", route=True
    )
    assert registered is True
    assert (await store.session_get(sid="s1")).channel == "c1"
    assert await store.online_user_ids() == {3}
    assert await store.room_sessions(room="user:3") == {"s1"}
    assert await store.session_rooms(sid="s1") == {"user:3"}
    assert await store.routes_for(rooms=["user:3"]) == {"user:3": {"c1"}}
    # A second session of the user on the same instance: the route is already there.
    registered = await store.session_register(
        sid="s2", user_id=3, instance_id="i1", channel="c1", room="user:3", route=False
    )
    assert registered is False
    assert await store.room_sessions(room="user:3") == {"s1", "s2"}
    assert await store.routes_for(rooms=["user:3"]) == {"user:3": {"c1"}}
    removed = await store.session_remove(sid="s1")
    assert removed.rooms == ["user:3"]


@pytest.mark.redis
async def test_session_register_reloads_scripts_redis_lost():
    # A private redis-server: SCRIPT FLUSH must not touch the shared one.
    private = PrivateRedis(free_port())
    private.start()
    store = RedisState(url=f"redis://127.0.0.1:{private.port}/0", prefix="rt-test")
    try:
        await store.session_add(sid="s0", user_id=1, instance_id="i1", channel="c1")
        await store.client().script_flush()  # as after a Redis restart
        await store.session_register(
            sid="s1",
            user_id=2,
            instance_id="i1",
            channel="c1",
            room="user:2",
            route=True,
        )
        assert await store.room_sessions(room="user:2") == {"s1"}
        assert await store.online_user_ids() == {1, 2}
    finally:
        await store.close()
        private.kill()


@pytest.fixture
async def private_store():
    """A RedisState on a redis-server of the test's own (it may SCRIPT FLUSH)."""
    server = PrivateRedis(free_port())
    server.start()
    store = RedisState(url=f"redis://127.0.0.1:{server.port}/0", prefix="rt-test")
    yield store
    await store.close()
    server.kill()


@pytest.mark.redis
async def test_single_scripts_reload_after_redis_lost_them(private_store):
    # Every script runs the one way session_register's pipeline does (above).
    store = private_store
    await store.session_add(sid="s1", user_id=1, instance_id="i1", channel="c1")
    await store.client().script_flush()
    assert await store.room_join(room="r", sid="s1") is True
    await store.client().script_flush()
    await store.session_touch(sid="s1")
    assert (await store.session_get(sid="s1")).last_seen > 0
    assert await store.lock_acquire(name="w", owner="a", ttl=5) is True
    await store.client().script_flush()
    assert await store.lock_release(name="w", owner="a") is True


async def test_unknown_session_cannot_join(store):
    assert await store.room_join(room="r", sid="ghost") is False
    assert await store.room_sessions(room="r") == set()


async def test_throttle(store):
    assert await store.throttle(key="k", seconds=0.2) is True
    assert await store.throttle(key="k", seconds=0.2) is False
    assert await store.throttle(key="other", seconds=0.2) is True
    await asyncio.sleep(0.25)
    assert await store.throttle(key="k", seconds=0.2) is True


async def test_presence_claim_once_per_change_and_interval(store):
    assert await store.presence_claim(interval=0.2) is False  # nothing changed
    await store.session_add(sid="s1", user_id=1, instance_id="i", channel="c")
    assert await store.presence_claim(interval=0.2) is True
    assert await store.presence_claim(interval=0.2) is False  # already broadcast
    await store.session_add(sid="s2", user_id=2, instance_id="i", channel="c")
    assert await store.presence_claim(interval=0.2) is False  # within the interval
    await asyncio.sleep(0.25)
    assert await store.presence_claim(interval=0.2) is True


async def test_instance_remove_takes_its_tasks(store):
    from realtime.state import TaskRecord

    for tid, iid in (("t1", "i1"), ("t2", "i2")):
        record = TaskRecord(tid, "chat", 1, iid, "c", 1.0)
        await store.task_add(record=record)
    await store.session_add(sid="a", user_id=1, instance_id="i1", channel="c1")
    await store.instance_remove(instance_id="i1")
    assert [t.task_id for t in await store.task_list()] == ["t2"]
    assert await store.task_ids_for_item(item_id="chat") == {"t2"}


async def test_instance_remove_takes_all_its_sessions(store):
    await store.session_add(sid="a", user_id=1, instance_id="i1", channel="c1")
    await store.session_add(sid="b", user_id=2, instance_id="i1", channel="c1")
    await store.session_add(sid="c", user_id=2, instance_id="i2", channel="c2")
    await store.room_join(room="r", sid="a")
    reaped = await store.instance_remove(instance_id="i1")
    assert (reaped.sessions, reaped.went_offline, reaped.rooms) == (2, [1], ["r"])
    assert await store.online_user_ids() == {2}
    assert await store.room_sessions(room="r") == set()


@pytest.mark.redis
async def test_redis_reaps_instances_whose_liveness_lapsed():
    store = RedisState(url=REDIS_TEST_URL, prefix=f"rt-test-{uuid.uuid4().hex[:10]}")
    try:
        assert (
            await store.instance_refresh(instance_id="dead", channel="cd", ttl=0.2)
            is False
        )
        assert (
            await store.instance_refresh(instance_id="live", channel="cl", ttl=5)
            is False
        )
        assert (
            await store.instance_refresh(instance_id="live", channel="cl", ttl=5)
            is True
        )
        await store.session_add(sid="d1", user_id=1, instance_id="dead", channel="cd")
        await store.session_add(sid="l1", user_id=2, instance_id="live", channel="cl")
        await store.room_join(room="doc_1", sid="d1")
        assert await store.reap_dead_instances() == []  # not expired yet
        await asyncio.sleep(0.3)
        reaped = await store.reap_dead_instances()
        assert [
            (r.instance_id, r.channel, r.rooms, r.went_offline) for r in reaped
        ] == [("dead", "cd", ["doc_1"], [1])]
        assert await store.online_user_ids() == {2}
        assert await store.room_sessions(room="doc_1") == set()
        assert await store.reap_dead_instances() == []
        # A lapsed instance learns it on its next refresh and can re-register.
        assert (
            await store.instance_refresh(instance_id="dead", channel="cd", ttl=5)
            is False
        )
    finally:
        await store.flush()
        await store.close()


async def test_usage_marks_expire_and_go_with_their_session(store):
    await store.session_add(sid="a1", user_id=1, instance_id="i1", channel="c")
    await store.session_add(sid="b1", user_id=2, instance_id="i1", channel="c")
    assert await store.usage_mark(model="m1", sid="a1", ttl=0.3) is True
    assert await store.usage_mark(model="m2", sid="a1", ttl=30) is True
    assert await store.usage_mark(model="m2", sid="b1", ttl=30) is True
    assert await store.usage_mark(model="m3", sid="nobody", ttl=30) is False
    assert await store.usage_models() == {"m1": {"a1"}, "m2": {"a1", "b1"}}
    await asyncio.sleep(0.35)
    # Lapsed marks are not in use even before anything deletes them.
    assert await store.usage_models() == {"m2": {"a1", "b1"}}
    assert await store.usage_expire(dry_run=True) == [("a1", "m1")]
    assert await store.usage_expire() == [("a1", "m1")]
    assert await store.usage_expire() == []
    await store.session_remove(sid="a1")
    assert await store.usage_models() == {"m2": {"b1"}}


async def test_usage_claim_only_on_change_and_coalesced(store):
    await store.session_add(sid="a1", user_id=1, instance_id="i1", channel="c")
    assert await store.usage_claim(interval=0.2) is None  # nothing changed yet
    await store.usage_mark(model="m1", sid="a1", ttl=30)
    assert await store.usage_claim(interval=0.2) == ["m1"]
    await store.usage_mark(model="m0", sid="a1", ttl=30)
    assert await store.usage_claim(interval=0.2) is None  # too soon
    await asyncio.sleep(0.25)
    assert await store.usage_claim(interval=0.2) == ["m0", "m1"]
    await asyncio.sleep(0.25)
    assert await store.usage_claim(interval=0.2) is None  # unchanged
    await store.session_remove(sid="a1")
    assert await store.usage_claim(interval=0.2) == []


async def test_leader_lock_is_owned(store):
    assert await store.lock_acquire(name="w", owner="a", ttl=0.3) is True
    assert await store.lock_acquire(name="w", owner="b", ttl=0.3) is False
    assert await store.lock_renew(name="w", owner="b", ttl=5) is False
    assert await store.lock_release(name="w", owner="b") is False
    assert await store.lock_renew(name="w", owner="a", ttl=0.3) is True
    owner, left = await store.lock_owner(name="w")
    assert owner == "a" and 0 < left <= 0.3
    await asyncio.sleep(0.35)  # expired: another may take it
    assert await store.lock_owner(name="w") == (None, 0.0)
    assert await store.lock_renew(name="w", owner="a", ttl=5) is False
    assert await store.lock_acquire(name="w", owner="b", ttl=5) is True
    assert await store.lock_release(name="w", owner="a") is False
    assert await store.lock_release(name="w", owner="b") is True
    assert await store.lock_acquire(name="w", owner="a", ttl=5) is True


async def test_listing_and_pruning(store):
    await store.instance_refresh(instance_id="i1", channel="c1", ttl=30)
    await store.session_add(sid="a1", user_id=1, instance_id="i1", channel="c1")
    await store.session_add(sid="b1", user_id=2, instance_id="i1", channel="c1")
    await store.room_join(room="doc_note:1", sid="a1")
    await store.room_join(room="doc_note:1", sid="b1")
    assert [s.sid for s in await store.session_list()] == ["a1", "b1"]
    counts = await store.room_counts()
    assert counts["doc_note:1"] == 2
    assert await store.instance_list() == {"i1": True}
    assert await store.room_prune(room="doc_note:1") == []
    # A member whose record lost the room (a partial write) no longer holds it.
    if isinstance(store, MemoryState):
        store.session_room_sets["b1"].discard("doc_note:1")
    else:
        await store.client().srem(f"{store.p}:s:b1:rooms", "doc_note:1")
    assert await store.room_prune(room="doc_note:1", dry_run=True) == ["b1"]
    assert await store.room_sessions(room="doc_note:1") == {"a1", "b1"}
    assert await store.room_prune(room="doc_note:1") == ["b1"]
    assert await store.room_sessions(room="doc_note:1") == {"a1"}
    assert await store.room_user_ids(room="doc_note:1") == {1}


def _setting_defaults() -> dict[str, object]:
    """Each env_*("NAME", default) in settings.py: the default, not the environment."""
    source = (Path(__file__).resolve().parents[1] / "settings.py").read_text()
    defaults = {}
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.startswith("env_")
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)
        ):
            defaults[node.args[0].value] = node.args[1].value
    return defaults


def test_redis_state_defaults_are_the_settings_defaults():
    # get_state passes the settings; a store built without them must not differ.
    settings = _setting_defaults()
    # The master's default is applied after Open WebUI's naming rule, not by env_str.
    settings["REDIS_SENTINEL_MASTER"] = realtime_settings.REDIS_SENTINEL_MASTER_DEFAULT
    params = inspect.signature(RedisState).parameters
    for param, setting in {
        "sentinel_master": "REDIS_SENTINEL_MASTER",
        "prefix": "REDIS_KEY_PREFIX",
        "max_connections": "REDIS_MAX_CONNECTIONS",
        "pool_timeout": "REDIS_POOL_TIMEOUT",
        "routes_rebuild_wait": "INSTANCE_TTL",
    }.items():
        assert params[param].default == settings[setting], param


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.iscoroutinefunction(v)]


def test_the_state_store_is_every_concern_and_nothing_else():
    own = set(_methods(StateStore)) - {"close"}
    assert own == set(), "a StateStore method belongs in one concern's protocol"
    names = [name for concern in CONCERNS for name in _methods(concern)]
    assert len(names) == len(set(names)), "a method is in two concerns"


@pytest.mark.parametrize("backend", [MemoryState, RedisState])
@pytest.mark.parametrize("concern", [*CONCERNS, StateStore], ids=lambda c: c.__name__)
def test_each_backend_implements_each_concern(backend, concern):
    for name in _methods(concern):
        implemented = getattr(backend, name)
        assert inspect.iscoroutinefunction(implemented), name
        assert inspect.signature(implemented) == inspect.signature(
            getattr(concern, name)
        ), name


# The file of each concern, in both backends.
CONCERN_FILES = {
    "SessionStore": "sessions",
    "RoomStore": "rooms",
    "RouteStore": "routes",
    "HistoryStore": "history",
    "PresenceStore": "presence",
    "InstanceStore": "instances",
    "TaskStore": "tasks",
    "UsageStore": "usage",
    "LockStore": "locks",
}


@pytest.mark.parametrize("concern", CONCERNS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("package", "composed"),
    [(memory_backend, MemoryState), (redis_backend, RedisState)],
    ids=["memory", "redis"],
)
def test_each_concern_is_implemented_by_its_own_class(package, composed, concern):
    # redis/sessions.py's class implements SessionStore, and nothing overrides it.
    own = [c for c in composed.__mro__ if c.__module__.startswith(package.__name__)]
    implementing = [
        c for c in own if all(name in vars(c) for name in _methods(concern))
    ]
    assert len(implementing) == 1, implementing
    (cls,) = implementing
    assert cls.__module__ == f"{package.__name__}.{CONCERN_FILES[concern.__name__]}"
    for name in _methods(concern):
        assert getattr(composed, name) is vars(cls)[name], name


def test_backend_files_import_only_the_base_and_their_own_package():
    # realtime.state (the __init__) imports the backends: they must not import it.
    state_dir = Path(__file__).resolve().parents[1] / "state"
    for backend in ("memory", "redis"):
        for path in sorted((state_dir / backend).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    if name.startswith("realtime"):
                        assert name == "realtime.state.base" or name.startswith(
                            f"realtime.state.{backend}."
                        ), f"{path.name} imports {name}"
