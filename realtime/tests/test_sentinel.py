"""Redis Sentinel: a real redis-sentinel in front of a redis-server of the test's own,
serving the channel layer and the shared state of two real server processes."""

import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest
import redis

from realtime.launcher import Fleet, free_port
from realtime.settings import redis_channel_layer
from realtime.state import get_state
from testing.clients import RealSocket, SocketClient
from testing.cluster import ARTIFACTS, cluster_env, http_post
from testing.factories import token_for
from testing.services import REDIS_TEST_URL, REQUIRE_SERVICES, PrivateRedis

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


@dataclass
class SentinelSetup:
    """A private master, its replica and a redis-sentinel watching them."""

    master: PrivateRedis
    replica: subprocess.Popen
    replica_port: int
    port: int  # the sentinel's

    def wait_knows_replica(self, timeout: float = 20) -> None:
        """Until Sentinel lists the replica as a healthy replica of the master."""
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            replicas = client.sentinel_slaves(MASTER)
            if any(
                int(r["port"]) == self.replica_port
                and not (
                    {"s_down", "o_down", "disconnected"} & set(r["flags"].split(","))
                )
                for r in replicas
            ):
                return
            assert time.monotonic() < deadline, f"Sentinel never saw it: {replicas}"
            time.sleep(0.1)

    def master_port(self) -> int:
        """The port Sentinel names as the master now."""
        return int(
            redis.Redis(port=self.port).sentinel_get_master_addr_by_name(MASTER)[1]
        )


@pytest.fixture
def sentinel(tmp_path):
    """A private redis-server with a replica and a redis-sentinel monitoring them.
    Never the shared Redis on 6379."""
    assert SENTINEL, "REQUIRE_SERVICES=1 but redis-sentinel is not installed"
    ARTIFACTS.mkdir(exist_ok=True)
    master = PrivateRedis(free_port())
    master.start()
    replica_port = free_port()
    replica = subprocess.Popen(
        ["redis-server", "--port", str(replica_port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"]
        + ["--replicaof", "127.0.0.1", str(master.port)],
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    config = tmp_path / "sentinel.conf"  # sentinel rewrites its config: writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
        # Fail over fast: a test waits for it.
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 5000\n"
    )
    with open(ARTIFACTS / "redis-sentinel.log", "wb") as log:
        proc = subprocess.Popen(
            [SENTINEL, str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    setup = SentinelSetup(master, replica, replica_port, port)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.sentinel_get_master_addr_by_name(MASTER):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-sentinel did not start"
            time.sleep(0.05)
        yield setup
    finally:
        proc.kill()
        proc.wait()
        replica.kill()
        replica.wait()
        master.kill()


def sentinel_settings(settings, setup: SentinelSetup, prefix: str) -> dict:
    """Point this process at the Sentinel; returns the server processes' env."""
    settings.REDIS_URL = ""
    settings.REDIS_SENTINELS = [("127.0.0.1", setup.port)]
    settings.REDIS_SENTINEL_MASTER = MASTER
    settings.REDIS_KEY_PREFIX = prefix
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url="", sentinels=settings.REDIS_SENTINELS, master=MASTER, prefix=prefix
        )
    }
    return {
        **cluster_env(prefix, settings.SECRET_KEY),
        "REDIS_URL": "",
        "REDIS_SENTINELS": f"127.0.0.1:{setup.port}",
        "REDIS_SENTINEL_MASTER": MASTER,
    }


async def test_two_instances_share_layer_and_state_through_sentinel(
    sentinel, redis_prefix, settings, people, request
):
    env = sentinel_settings(settings, sentinel, redis_prefix)
    with Fleet(
        env=env,
        servers=["uvicorn", "daphne"],
        worker=True,
        log_dir=ARTIFACTS,
        name=request.node.name,
    ) as fleet:
        one, two = fleet.instances
        alice = await SocketClient.open(RealSocket(one.ws), people["alice"], join=True)
        bob = await SocketClient.open(RealSocket(two.ws), people["bob"], join=True)
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
    private = redis.Redis(port=sentinel.master.port)
    assert private.keys(f"{redis_prefix}:*")
    stats = private.info("commandstats")
    assert stats["cmdstat_bzpopmin"]["calls"] > 0
    assert stats["cmdstat_zadd"]["calls"] > 0
    shared = redis.Redis.from_url(REDIS_TEST_URL)
    assert shared.keys(f"{redis_prefix}:*") == []


async def test_fleet_carries_on_after_a_sentinel_failover(
    sentinel, redis_prefix, settings, people, request
):
    env = sentinel_settings(settings, sentinel, redis_prefix)
    with Fleet(
        env=env,
        servers=["uvicorn", "uvicorn"],
        worker=False,
        log_dir=ARTIFACTS,
        name=request.node.name,
    ) as fleet:
        one, two = fleet.instances
        bob = await SocketClient.open(RealSocket(two.ws), people["bob"], join=True)
        admin = token_for(people["admin"])
        try:
            # Wait until the replica has what the master has, then kill the master.
            replica = redis.Redis(port=sentinel.replica_port)
            deadline = time.monotonic() + 10
            while replica.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "replica never synced"
                time.sleep(0.05)
            # Sentinel learns of replicas from the master's INFO, every 10 s: a master
            # killed before that leaves it no replica to promote (seen in CI).
            sentinel.wait_knows_replica()
            sentinel.master.kill()
            deadline = time.monotonic() + 30
            while sentinel.master_port() != sentinel.replica_port:
                assert time.monotonic() < deadline, "Sentinel did not fail over"
                time.sleep(0.1)
            # Emits from instance one reach bob on instance two again (layer and
            # state now on the promoted replica); the first may be lost in the gap.
            deadline = time.monotonic() + 30
            n = 0
            while True:
                n += 1
                status, _ = http_post(
                    f"{one.http}/api/realtime/emit/",
                    {"user_id": people["bob"].id, "event": "after", "data": n},
                    admin,
                )
                try:
                    if status == 202 and await bob.event("after", timeout=1):
                        break
                except TimeoutError:
                    pass
                assert time.monotonic() < deadline, f"no emit got through ({status})"
            # New sockets on both instances are served and see each other.
            alice = await SocketClient.open(
                RealSocket(one.ws), people["alice"], join=True
            )
            try:
                ids = (await alice.call("user-list"))["data"]["user_ids"]
                assert people["alice"].id in ids and people["bob"].id in ids
            finally:
                await alice.close()
        finally:
            await bob.close()
