"""Redis Sentinel: a real redis-sentinel in front of a redis-server of the test's own,
serving the channel layer and the shared state of two real server processes."""

import shutil
import subprocess
import time

import pytest
import redis

from conftest import (
    ARTIFACTS,
    REDIS_TEST_URL,
    REQUIRE_SERVICES,
    PrivateRedis,
    WsClient,
    cluster_env,
    http_post,
    token_for,
)
from realtime.launcher import Fleet, free_port
from realtime.settings import redis_channel_layer
from realtime.state import get_state

SENTINEL = shutil.which("redis-sentinel")
MASTER = "rt-test-master"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        SENTINEL is None and not REQUIRE_SERVICES,
        reason="no redis-sentinel (apt-get install redis-sentinel)",
    ),
]


@pytest.fixture
def sentinel(tmp_path):
    """A private redis-server and a redis-sentinel monitoring it; yields
    (redis port, sentinel port). Never the shared Redis on 6379."""
    assert SENTINEL, "REQUIRE_SERVICES=1 but redis-sentinel is not installed"
    master = PrivateRedis(free_port())
    master.start()
    port = free_port()
    config = tmp_path / "sentinel.conf"  # sentinel rewrites its config: writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "redis-sentinel.log", "wb") as log:
        proc = subprocess.Popen(
            [SENTINEL, str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.sentinel_get_master_addr_by_name(MASTER):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-sentinel did not start"
            time.sleep(0.05)
        yield master.port, port
    finally:
        proc.kill()
        proc.wait()
        master.kill()


async def test_two_instances_share_layer_and_state_through_sentinel(
    sentinel, redis_prefix, settings, people, request
):
    master_port, sentinel_port = sentinel
    sentinels = f"127.0.0.1:{sentinel_port}"
    env = {
        **cluster_env(redis_prefix, settings.SECRET_KEY),
        "REDIS_URL": "",
        "REDIS_SENTINELS": sentinels,
        "REDIS_SENTINEL_MASTER": MASTER,
    }
    # This process too: its state store and layer find the master through Sentinel.
    settings.REDIS_URL = ""
    settings.REDIS_SENTINELS = [("127.0.0.1", sentinel_port)]
    settings.REDIS_SENTINEL_MASTER = MASTER
    settings.REDIS_KEY_PREFIX = redis_prefix
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url="",
            sentinels=settings.REDIS_SENTINELS,
            master=MASTER,
            prefix=redis_prefix,
        )
    }
    with Fleet(
        env=env,
        servers=["uvicorn", "daphne"],
        worker=True,
        log_dir=ARTIFACTS,
        name=request.node.name,
    ) as fleet:
        one, two = fleet.instances
        alice = await WsClient.open(one.ws, people["alice"], join=True)
        bob = await WsClient.open(two.ws, people["bob"], join=True)
        try:
            # Shared state: each instance sees the other's user online.
            ids = sorted([people["alice"].id, people["bob"].id])
            assert (await alice.call("user-list"))["data"]["user_ids"] == ids
            assert (await bob.call("user-list"))["data"]["user_ids"] == ids
            assert sorted(await get_state().online_user_ids()) == ids
            # The channel layer: an emit on one instance reaches a socket on the other.
            status, _ = http_post(
                f"{one.http}/api/realtime/emit/",
                {"user_id": people["bob"].id, "event": "hello", "data": {"via": 1}},
                token_for(people["admin"]),
            )
            assert status == 202
            assert await bob.event("hello") == {"via": 1}
        finally:
            await alice.close()
            await bob.close()
    # Everything went to the master behind Sentinel, nothing to the shared Redis:
    # state keys are there, and layer receives (BZPOPMIN) and sends (ZADD) ran there.
    private = redis.Redis(port=master_port)
    assert private.keys(f"{redis_prefix}:*")
    stats = private.info("commandstats")
    assert stats["cmdstat_bzpopmin"]["calls"] > 0
    assert stats["cmdstat_zadd"]["calls"] > 0
    shared = redis.Redis.from_url(REDIS_TEST_URL)
    assert shared.keys(f"{redis_prefix}:*") == []
