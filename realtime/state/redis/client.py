"""Connections to Redis: one client per event loop, plain, through Sentinel, or to a
Redis Cluster.

`RedisConnection` is what every concern of the Redis store builds on: the client of
the running loop, the key prefixes, and running the scripts of scripts.py under them.

Two prefixes, so that the store runs unchanged on a Redis Cluster (the key layout is
the same everywhere; redis/__init__.py lists it):
    p   "{rt}": membership, routes, presence, tasks, usage, locks. Their scripts
        change several of these keys at once (a session leaving updates its rooms,
        its user, the online set and its instance), so the hash tag puts them all
        in one slot, as a script on a cluster needs.
    hp  "rt": per-room history, tagged by room ("rt:h:{room}"): the keys of the
        hot path (one append per emitted event) spread over every primary.
"""

import asyncio
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.crc import key_slot
from redis.driver_info import DriverInfo
from redis.exceptions import (
    ClusterError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import realtime.state.redis.scripts as scripts

# The defaults of the settings that get_state passes (REDIS_SENTINEL_MASTER,
# REDIS_KEY_PREFIX, REDIS_MAX_CONNECTIONS, REDIS_POOL_TIMEOUT): the settings are the
# truth, and a test keeps these equal to their defaults.
SENTINEL_MASTER = "mymaster"  # the master name of Sentinel's own example config
PREFIX = "rt"  # for "real-time"; short, since it starts every key
# A pool that waits for one of 1000 connections up to 10 s rather than failing a
# burst of commands (200 streams, a reconnect storm) at once.
MAX_CONNECTIONS = 1000
POOL_TIMEOUT = 10.0
# A pooled connection idle this long is checked with a PING before its next command,
# so one that Redis or a proxy dropped meanwhile is noticed there, not mid-command.
HEALTH_CHECK_SECONDS = 30
# Keys per SCAN step when listing every room (operators) or flushing a prefix
# (tests): large enough for few round trips, small enough to keep each step short.
SCAN_COUNT = 1000
# Attempts of a command on a cluster whose node fails or whose slots move, the
# client reloading the slot map between them. A replica takes over only after
# cluster-node-timeout (15 s by default), longer than these take: the callers'
# own loops (the hub's liveness, the outbox, the worker) retry past that.
CLUSTER_RETRIES = 10
# What Redis raises while it is unreachable or failing over, and a retry later may
# succeed: a lost connection, and on a cluster a slot with no primary yet
# (CLUSTERDOWN, a slot map without it) or a key mid-migration (TRYAGAIN).
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    SlotNotCoveredError,
    TryAgainError,
)
# What each new connection tells Redis about the client (CLIENT SETINFO), resolved
# once: otherwise redis-py 8.1 asks importlib.metadata per connection, 0.75 ms each,
# which a reconnect storm or a burst of pool growth pays thousands of times.
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)
MS_PER_SECOND = 1000  # PX, PEXPIRE and PTTL count milliseconds


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds of PX and PEXPIRE."""
    return int(seconds * MS_PER_SECOND)


async def per_key(client: aioredis.Redis, command: str, keys: list[str]) -> list:
    """One read command (`command` names it: "hgetall") per key, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        getattr(pipe, command)(key)
    return await pipe.execute()


class RedisConnection:
    """Connection settings and the clients of each event loop, under one key prefix."""

    def __init__(
        self,
        *,
        url: str,
        sentinels: list[tuple[str, int]] | None,
        sentinel_master: str,
        prefix: str,
        max_connections: int,
        pool_timeout: float,
        cluster: bool = False,
        cluster_nodes: list[tuple[str, int]] | None = None,
    ) -> None:
        self.url = url
        self.sentinels = sentinels or []
        self.sentinel_master = sentinel_master
        self.cluster = cluster
        self.cluster_nodes = cluster_nodes or []
        self.p = "{" + prefix + "}"
        self.hp = prefix
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        # redis.asyncio connections belong to the loop that opened them; sync callers
        # (async_to_sync in management commands, tests) run their own loops.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def client(self) -> aioredis.Redis:
        """The client for the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._new_client()
            self._clients[loop] = client
        return client

    def _new_client(self) -> aioredis.Redis:
        opts = {
            "decode_responses": True,
            "health_check_interval": HEALTH_CHECK_SECONDS,
            "max_connections": self.max_connections,
            "driver_info": DRIVER_INFO,
        }
        if self.cluster:
            return self._new_cluster_client(opts)
        if self.sentinels:
            parsed = urlparse(self.url) if self.url else None
            if parsed and parsed.password:
                opts["password"] = parsed.password
            if parsed and parsed.path.strip("/"):
                opts["db"] = int(parsed.path.strip("/"))
            return Sentinel(self.sentinels).master_for(self.sentinel_master, **opts)
        # Waits for a free connection rather than failing a burst of commands.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, timeout=self.pool_timeout, **opts
        )
        return aioredis.Redis(connection_pool=pool)

    def _new_cluster_client(self, opts: dict) -> RedisCluster:
        # REDIS_URL names one node (and the password); the client finds the others
        # and follows MOVED and ASK while slots migrate. A node that stops answering
        # makes it reload the slot map and retry, which rides out a failover.
        parsed = urlparse(self.url) if self.url else None
        nodes = [ClusterNode(host, port) for host, port in self.cluster_nodes]
        if parsed and parsed.hostname:
            nodes.insert(0, ClusterNode(parsed.hostname, parsed.port or 6379))
        if parsed and parsed.password:
            opts["password"] = parsed.password
        return RedisCluster(
            startup_nodes=nodes,
            retry=Retry(ExponentialWithJitterBackoff(), CLUSTER_RETRIES),
            **opts,
        )

    def atomic_pipeline(self) -> Pipeline:
        """A MULTI/EXEC pipeline of keys in p's slot. On a cluster, a plain
        pipeline: redis-py 8.1's asyncio cluster transactions read replies on
        another event loop ("attached to a different loop") and break the client.
        The callers only need their commands in order, which one connection keeps:
        each writes its change before the version or liveness key readers check."""
        return self.client().pipeline(transaction=not self.cluster)

    def by_slot(self, keys: list[str]) -> list[list[str]]:
        """The keys grouped by cluster slot, in order (on one Redis: one group), for
        one script per slot."""
        if not self.cluster:
            return [keys]
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot(key.encode()), []).append(key)
        return list(groups.values())

    async def run(self, script: scripts.Script, *args) -> Any:
        """Run one script under this prefix (its keys all in p's slot)."""
        return await scripts.run(self.client(), script, [self.p], self.p, *args)

    def queue(self, pipe: Pipeline, script: scripts.Script, *args) -> None:
        """Queue one script under this prefix in a pipeline of run_pipeline."""
        scripts.queue(pipe, script, [self.p], self.p, *args)

    async def run_pipeline(self, fill: Callable[[Pipeline], None]) -> list[Any]:
        """Execute the pipeline `fill` queues (see scripts.run_pipeline)."""
        return await scripts.run_pipeline(self.client(), fill)

    async def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        client = self.client()
        for match in (f"{self.p}:*", f"{self.hp}:*"):
            async for key in client.scan_iter(match=match, count=SCAN_COUNT):
                await client.delete(key)

    async def close(self) -> None:
        """Close the client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
