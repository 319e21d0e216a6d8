"""The layer's Redis Cluster clients: one per event loop, from the layer config."""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlparse

import redis
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.retry import Retry

log = logging.getLogger(__name__)

# Resolved once: without it every client would look the version up with
# importlib.metadata (about 0.75 ms).
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)
# A pooled connection idle this long is PINGed before its next command, so one a
# node or a proxy dropped is noticed there rather than mid-command.
HEALTH_CHECK_SECONDS = 30
# A node that does not accept a connection this fast is treated as down.
CONNECT_TIMEOUT = 5.0
# Commands that meet a failover or a slot move (ConnectionError, TimeoutError,
# ClusterDownError) are retried this many times on a fresh slot map. redis-py 8.1's
# asyncio cluster client takes only the count from this Retry (it waits 0.25 s after
# ClusterDownError, not between the other retries); the reader backs off itself.
RETRIES = 6
RETRY_BASE = 0.05
RETRY_CAP = 1.0


def startup_nodes(url: str, nodes: list[str]) -> list[ClusterNode]:
    """The node of `url` and every extra "host:port" in `nodes`."""
    out = []
    if url:
        parsed = urlparse(url)
        out.append(ClusterNode(parsed.hostname or "127.0.0.1", parsed.port or 6379))
    for node in nodes:
        host, _, port = node.strip().rpartition(":")
        out.append(ClusterNode(host, int(port)))
    if not out:
        raise ValueError("RedisClusterChannelLayer needs a url or nodes")
    return out


# Where the layer's keyed commands (EVALSHA aside, which redis-py routes by its
# numkeys) carry their keys: BLMPOP after its timeout and numkeys, DEL all its
# arguments, the others their first argument.
FIRST_KEY_COMMANDS = {"ZREM", "ZADD", "LLEN", "EXPIRE", "PEXPIRE", "TYPE"}


# redis-py otherwise fetches and parses COMMAND (all of Redis's command table, about
# 0.25 s of CPU here) whenever a client starts or re-reads the slot map after a
# failure, and asks the server with COMMAND GETKEYS before every BLMPOP: one more
# round trip, to a node that may be the one that died.
class LayerCommands(AsyncCommandsParser):
    """redis-py's key finder, told the keys of the layer's own commands."""

    async def initialize(self, node: ClusterNode | None = None) -> None:
        """Remember the node; COMMAND is fetched only if a command needs it."""
        if node is not None:
            self.node = node
        self.commands = {}

    async def get_keys(self, *args):
        """The keys of a command, without asking Redis for the layer's own."""
        name = str(args[0]).upper()
        if name == "BLMPOP":
            return args[3 : 3 + int(args[2])]
        if name == "DEL":
            return args[1:]
        if name in FIRST_KEY_COMMANDS and len(args) > 1:
            return args[1:2]
        if not self.commands:
            await super().initialize()
        return await super().get_keys(*args)


class ClusterClients:
    """The clients of each event loop (redis.asyncio connections belong to one)."""

    def __init__(
        self,
        *,
        url: str,
        nodes: list[str],
        socket_timeout: float,
        max_connections: int,
        cleanup: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        parsed = urlparse(url or "")
        self.options = {
            "startup_nodes": startup_nodes(url, nodes),
            "username": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "decode_responses": False,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "health_check_interval": HEALTH_CHECK_SECONDS,
            "max_connections": max_connections,
            "driver_info": DRIVER_INFO,
        }
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._cleanup = cleanup or self.close

    def get(self) -> RedisCluster:
        """The client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            retry = Retry(ExponentialWithJitterBackoff(RETRY_CAP, RETRY_BASE), RETRIES)
            client = RedisCluster(retry=retry, **self.options)
            client.commands_parser = LayerCommands()
            self._clients[loop] = client
            _before_close(loop, self._cleanup)
        return client

    async def close(self) -> None:
        """Close the client of the running loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


def _before_close(
    loop: asyncio.AbstractEventLoop, cleanup: Callable[[], Awaitable[None]]
) -> None:
    """Run cleanup() on the loop just before it closes: async_to_sync and
    asyncio.run make a loop per call, whose client would otherwise stay open."""
    original = loop.close

    def close() -> None:
        if not loop.is_closed() and not loop.is_running():
            try:
                loop.run_until_complete(cleanup())
            except Exception:  # noqa: BLE001 - the loop must close regardless
                log.exception("layer: closing this loop's Redis Cluster client")
        original()

    try:
        loop.close = close
    except AttributeError:
        pass  # a loop type without instance attributes: it is not closed per call
