"""RedisClusterChannelLayer: the Channels layer interface on a Redis Cluster."""

import logging
import re
import time
import uuid

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from redis.exceptions import NoScriptError

import realtime.cluster_layer.envelope as envelope
import realtime.cluster_layer.scripts as scripts
from realtime.cluster_layer.connection import ClusterClients
from realtime.cluster_layer.inbox import Inbox

log = logging.getLogger(__name__)

# channels-redis's defaults, so a config moved from it means the same.
PREFIX = "asgi"
CAPACITY = 100
EXPIRY = 60  # seconds a message waits at most
GROUP_EXPIRY = 86400  # seconds a group membership lasts without a new group_add
# Seconds one BLMPOP blocks: the longest a reader waits before it checks whether
# anybody still receives (and channels-redis's BZPOPMIN timeout).
BLOCKING_TIMEOUT = 5.0
# Reads must outlast BLOCKING_TIMEOUT, or an idle pop fails at the socket (and a
# message popped in that instant is lost); the settings' LAYER_SOCKET_TIMEOUT.
SOCKET_TIMEOUT = 30.0
# Per node; redis-py fails past it at once rather than waiting (REDIS_MAX_CONNECTIONS).
MAX_CONNECTIONS = 1000
# Messages one pop takes off a process's list: a busy instance drains its queue in
# few round trips, and a batch decodes in well under a millisecond.
RECEIVE_BATCH = 100
MS_PER_SECOND = 1000  # PEXPIRE counts milliseconds


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisClusterChannelLayer(BaseChannelLayer):
    """Channels, groups and flush on a Redis Cluster, one slot per channel and group."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        *,
        url: str = "",
        nodes: list[str] | None = None,
        prefix: str = PREFIX,
        capacity: int = CAPACITY,
        channel_capacity: dict | None = None,
        expiry: float = EXPIRY,
        group_expiry: float = GROUP_EXPIRY,
        socket_timeout: float = SOCKET_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        blocking_timeout: float = BLOCKING_TIMEOUT,
        receive_batch: int = RECEIVE_BATCH,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        if socket_timeout <= blocking_timeout:
            raise ValueError(
                f"socket_timeout ({socket_timeout}) must exceed blocking_timeout "
                f"({blocking_timeout}), or idle reads fail at the socket"
            )
        if "{" in prefix or "}" in prefix:
            # Redis hashes the first {...} of a key: the prefix's would put every
            # key in one slot.
            raise ValueError(f"prefix {prefix!r} must not contain braces")
        self.prefix = prefix
        self.group_expiry = group_expiry
        self.client_prefix = uuid.uuid4().hex
        self.clients = ClusterClients(
            url=url,
            nodes=list(nodes or []),
            socket_timeout=socket_timeout,
            max_connections=max_connections,
            cleanup=self.close,
        )
        self.inbox = Inbox(
            client=self.clients.get,
            key=self._channel_key,
            buffer_size=capacity,
            batch=receive_batch,
            blocking_timeout=blocking_timeout,
            expiry=expiry,
        )

    # --- keys: the braces are the hash tag, so each key has its name's slot ------

    def _channel_key(self, source: str) -> bytes:
        return f"{self.prefix}:ch:{{{source}}}".encode()

    def _group_key(self, group: str) -> bytes:
        return f"{self.prefix}:group:{{{group}}}".encode()

    # --- channels ---------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        """Queue a message on a channel; ChannelFull if it holds `capacity` already."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queued = await scripts.run(
            self.clients.get(),
            scripts.SEND,
            self._channel_key(self.non_local_name(channel)),
            *self._send_args(channel, envelope.pack(channel, message, self.expiry)),
        )
        if not queued:
            raise ChannelFull(channel)

    def _send_args(self, channel: str, element: bytes) -> tuple:
        expiry_ms = int(self.expiry * MS_PER_SECOND)
        return element, self.get_capacity(channel), expiry_ms, time.time()

    async def receive(self, channel: str) -> dict:
        """The first message on the channel that has not expired (waits for one)."""
        self.require_valid_channel_name(channel)
        source = self.non_local_name(channel)
        if "!" in channel:
            assert source.endswith(self.client_prefix + "!"), "Wrong client prefix"
        return await self.inbox.receive(channel, source)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A process-local channel name that this layer's receive() serves."""
        return f"{prefix.rstrip('.')}.{self.client_prefix}!{uuid.uuid4().hex}"

    # --- groups -------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Make the channel a member of the group (again: renew its membership)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await scripts.run(
            self.clients.get(),
            scripts.GROUP_ADD,
            self._group_key(group),
            channel,
            time.time(),
            int(self.group_expiry),
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove the channel from the group."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.clients.get().zrem(self._group_key(group), channel)

    async def group_send(self, group: str, message: dict) -> None:
        """Send to every current member, one pipelined round trip per node; full
        channels are skipped (logged at INFO, as channels-redis does)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        client = self.clients.get()
        members = await scripts.run(
            client,
            scripts.GROUP_MEMBERS,
            self._group_key(group),
            time.time() - self.group_expiry,
        )
        channels = [member.decode() for member in members]
        body = msgpack.packb(message, use_bin_type=True)
        results = await self._send_many(channels, body)
        if any(isinstance(r, NoScriptError) for r in results):
            await scripts.load_all(client)
            again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            retried = await self._send_many([channels[i] for i in again], body)
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        full = results.count(0)
        if full:
            log.info(
                "%s of %s channels over capacity in group %s",
                full,
                len(channels),
                group,
            )

    async def _send_many(self, channels: list[str], body: bytes) -> list:
        if not channels:
            return []
        pipe = self.clients.get().pipeline()
        for channel in channels:
            element = envelope.pack_body(channel, body, self.expiry)
            # ClusterPipeline blocks its evalsha() (it cannot know the slots of a
            # script in general); ours declares its one key, which routes it.
            pipe.execute_command(
                "EVALSHA",
                scripts.SEND.sha,
                1,
                self._channel_key(self.non_local_name(channel)),
                *self._send_args(channel, element),
            )
        return await pipe.execute(raise_on_error=False)

    # --- flush and close ---------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key under the prefix (SCAN on every primary) and the
        messages buffered here."""
        client = self.clients.get()
        pattern = _glob_escape(self.prefix) + ":*"
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        if keys:
            # redis-py splits a multi-key DEL by slot in cluster mode.
            await client.delete(*keys)
        self.inbox.clear()

    async def close(self) -> None:
        """Stop this loop's readers and close its client."""
        await self.inbox.stop()
        await self.clients.close()

    close_pools = close  # channels-redis's name, which callers and tests use
