"""Connections to Redis: one client per event loop, plain or through Sentinel.

`RedisConnection` is what every concern of the Redis store builds on: the client of
the running loop, the key prefix, and running the scripts of scripts.py under it.
"""

import asyncio
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel

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
    ) -> None:
        self.url = url
        self.sentinels = sentinels or []
        self.sentinel_master = sentinel_master
        self.p = prefix
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
        }
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

    async def run(self, script: scripts.Script, *args) -> Any:
        """Run one script under this prefix."""
        return await scripts.run(self.client(), script, self.p, *args)

    def queue(self, pipe: Pipeline, script: scripts.Script, *args) -> None:
        """Queue one script under this prefix in a pipeline of run_pipeline."""
        scripts.queue(pipe, script, self.p, *args)

    async def run_pipeline(self, fill: Callable[[Pipeline], None]) -> list[Any]:
        """Execute the pipeline `fill` queues (see scripts.run_pipeline)."""
        return await scripts.run_pipeline(self.client(), fill)

    async def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        client = self.client()
        async for key in client.scan_iter(match=f"{self.p}:*", count=SCAN_COUNT):
            await client.delete(key)

    async def close(self) -> None:
        """Close the client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
