"""Fixtures shared by every app's tests: users, WebSocket clients, Redis, a cluster of
server processes. What tests import lives in the testing package."""

import os
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.db import connections

from realtime import state as state_module
from realtime.hub import stop_hub
from realtime.launcher import Fleet
from realtime.settings import redis_channel_layer
from testing.clients import InProcess, SocketClient
from testing.cluster import ARTIFACTS, cluster_env
from testing.factories import user_create
from testing.services import (
    CHROMIUM,
    PRIVATE_REDIS_PORT,
    REDIS_TEST_URL,
    REQUIRE_SERVICES,
    PrivateRedis,
    chromium_available,
    redis_available,
    redis_flush,
)

# Threads of database_sync_to_async would otherwise keep connections open past the
# test run, and PostgreSQL refuses to drop a test database that is still in use.
# (Every thread's connection shares this dict, so it applies to all of them.)
connections.settings["default"]["CONN_MAX_AGE"] = 0


def _needs_redis_cluster(item) -> bool:
    """Whether a test runs on a Redis Cluster (the session one or its own)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (
        "redis_cluster" in item.fixturenames
        or "redis_cluster" in params.values()
        or any(name in item.path.name for name in ("redis_cluster", "cluster_layer"))
    )


def pytest_collection_modifyitems(config, items):
    """Skip Redis and browser tests when their service is missing, unless services
    are required; TEST_REDIS_CLUSTER=0 leaves out the tests on a Redis Cluster (CI's
    second pass, on PostgreSQL: the cluster does not depend on the database)."""
    if os.environ.get("TEST_REDIS_CLUSTER") == "0":
        kept = [item for item in items if not _needs_redis_cluster(item)]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    if not chromium_available() and any("browser" in i.keywords for i in items):
        if REQUIRE_SERVICES:
            raise pytest.UsageError(
                f"REQUIRE_SERVICES=1 but Chromium is not installed at {CHROMIUM}"
            )
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)
    if redis_available():
        return
    if REQUIRE_SERVICES:
        raise pytest.UsageError(
            f"REQUIRE_SERVICES=1 but Redis at {REDIS_TEST_URL} is down"
        )
    skip = pytest.mark.skip(reason=f"no Redis at {REDIS_TEST_URL}")
    for item in items:
        if "redis" in item.keywords or "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, and before it is dropped, the connections the
    background database threads (realtime.db) opened to it are closed: otherwise
    PostgreSQL refuses to drop a database "being accessed by other users"."""
    yield
    from realtime.db import close_connections

    close_connections()


@pytest.fixture(autouse=True)
def _no_worker_in_process(settings):
    """In-process tests start hubs without the cleanup worker (tests of the worker run
    it themselves); server processes of the cluster fixture run it, as in production."""
    settings.WORKER_IN_PROCESS = False


@pytest.fixture(autouse=True)
async def _fresh_realtime():
    """Each test starts with an empty in-memory layer and state and ends its hub."""
    channel_layers.backends = {}
    state_module.reset_state()
    yield
    await stop_hub()
    channel_layers.backends = {}
    state_module.reset_state()
    # Streams a test left open belong to its loop; at exit the emitter would end
    # them in a database that is gone by then.
    from chats import streams

    streams._loop_streams.made.clear()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"rt-test-{uuid.uuid4().hex[:10]}"


def _use_redis(request, settings, prefix: str, *, on_cluster: bool) -> None:
    """Switch this process to the real Redis (layer and state) under `prefix`: the
    shared test Redis, or the run's Redis Cluster; its keys go at the end."""
    if on_cluster:
        nodes = request.getfixturevalue("redis_cluster")
        url = nodes.url
        request.addfinalizer(lambda: nodes.flush(prefix))
    else:
        url = REDIS_TEST_URL
        request.addfinalizer(lambda: redis_flush(prefix))
    settings.REDIS_URL = url
    settings.REDIS_CLUSTER = on_cluster
    settings.REDIS_CLUSTER_NODES = []
    settings.REDIS_KEY_PREFIX = prefix
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url=url,
            sentinels=[],
            master="",
            prefix=prefix,
            cluster=on_cluster,
            nodes=[],
        )
    }


@pytest.fixture
def redis_kind(request) -> str:
    """Which Redis the `cluster` fixture's fleet and this process use: "redis" (one
    server), or "redis_cluster" for tests marked `also_on_redis_cluster`."""
    return getattr(request, "param", "redis")


def pytest_generate_tests(metafunc):
    """Tests marked `also_on_redis_cluster` run on one Redis and on a Redis Cluster."""
    marked = metafunc.definition.get_closest_marker("also_on_redis_cluster")
    if marked and "redis_kind" in metafunc.fixturenames:
        metafunc.parametrize(
            "redis_kind", ["redis", "redis_cluster"], indirect=True, scope="function"
        )


@pytest.fixture
def redis_settings(request, settings, redis_prefix, redis_kind):
    """Switch this process to the real Redis (layer and state) under a fresh prefix."""
    _use_redis(
        request, settings, redis_prefix, on_cluster=redis_kind == "redis_cluster"
    )
    return settings


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis),
    ]
)
def backend(request, settings, redis_prefix):
    """Run the test on the embedded default, on the real Redis and on a real Redis
    Cluster."""
    if request.param != "memory":
        _use_redis(
            request, settings, redis_prefix, on_cluster=request.param == "redis_cluster"
        )
    return request.param


@pytest.fixture
def make_user():
    """Create users: make_user("alice", name="Alice", role="admin", is_active=True);
    without a username, user1, user2, ..."""
    counter = {"n": 0}

    def make(username=None, **fields):
        counter["n"] += 1
        return user_create(username or f"user{counter['n']}", **fields)

    return make


@pytest.fixture
async def people(make_user):
    """alice, bob and an admin."""
    make = database_sync_to_async(make_user)
    return {
        "alice": await make("alice"),
        "bob": await make("bob"),
        "admin": await make("admin", role="admin"),
    }


@pytest.fixture
async def ws():
    """In-process clients: `await ws(user)` connects and authenticates (`join=True`:
    and joins), `ws()` is raw; every one is closed at the end."""
    from realtime.asgi import application

    transports: list[InProcess] = []

    async def open_client(
        user=None, *, headers=None, join=False, protocol=None
    ) -> SocketClient:
        transports.append(InProcess(application, headers=headers))
        return await SocketClient.open(
            transports[-1], user, join=join, protocol=protocol
        )

    yield open_client
    for transport in transports:
        await transport.close()


@pytest.fixture
def cluster(redis_settings, redis_prefix, settings, request):
    """Two instances, daphne and uvicorn, on the test database and the real Redis
    (or the Redis Cluster, see `redis_kind`), each with its in-process worker (the
    launcher's Fleet without a separate one)."""
    ARTIFACTS.mkdir(exist_ok=True)
    env = cluster_env(redis_prefix, settings.SECRET_KEY)
    if settings.REDIS_CLUSTER:
        env.update({"REDIS_URL": settings.REDIS_URL, "REDIS_CLUSTER": "true"})
    marker = request.node.get_closest_marker("cluster_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    fleet = Fleet(
        env=env,
        servers=["daphne", "uvicorn"],
        worker=False,
        log_dir=ARTIFACTS,
        name=request.node.name,
    )
    try:
        fleet.start()
        yield fleet.instances
    finally:
        fleet.stop()
    # Tokens travel only in the first frame and are never logged (JWTs start "eyJ").
    for server in fleet.instances:
        assert "eyJ" not in server.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def redis_cluster():
    """A real Redis Cluster (3 primaries, 3 replicas) shared by the run's tests, each
    under its own key prefix; tests that kill or reshard nodes start their own."""
    from testing.redis_cluster import RedisClusterProcesses

    nodes = RedisClusterProcesses().start()
    yield nodes
    nodes.stop()


@pytest.fixture
def private_redis():
    """A redis-server of the test's own on PRIVATE_REDIS_PORT, which it may restart
    (point the cluster at it with cluster_env(REDIS_URL=PRIVATE_REDIS_URL))."""
    server = PrivateRedis(PRIVATE_REDIS_PORT)
    server.start()
    yield server
    server.kill()
