"""Receiving: per key, one reader task per event loop that pops in batches and hands
each message to the local buffer of its channel, where receive() takes it.

Every process-local channel (`name!suffix`) of a layer shares the key of its
non-local part, so one reader serves them all. A reader runs while some receive()
waits on one of its channels. It never dies of a Redis error: it logs, backs off
(0.1 s doubling to 2 s) and pops again, and buffers stay as they are. A message it
popped stays in its channel's buffer whether or not the receive() that wanted it
was cancelled meanwhile, so the next receive() gets it.
"""

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

import realtime.cluster_layer.envelope as envelope

log = logging.getLogger(__name__)

# Back-off after a failed pop: a failover takes seconds (node timeout plus the
# election), a slot move milliseconds; 2 s bounds how late a recovered reader starts.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0


class Inbox:
    """The local buffers of received messages and the readers that fill them."""

    def __init__(
        self,
        *,
        client: Callable[[], RedisCluster],
        key: Callable[[str], bytes],
        buffer_size: int,
        batch: int,
        blocking_timeout: float,
        expiry: float,
    ) -> None:
        self.client = client
        self.key = key
        self.batch = batch
        self.blocking_timeout = blocking_timeout
        # Buffers of channels nobody receives from any more (a consumer that left)
        # are dropped once all they hold has expired; looking more often than
        # messages expire would find nothing new.
        self.sweep_every = expiry
        self._swept = time.monotonic()
        # Past buffer_size a channel's oldest buffered message is dropped, as
        # channels-redis's receive buffers do.
        self.buffers: defaultdict[str, deque] = defaultdict(
            lambda: deque(maxlen=buffer_size)
        )
        self.waiters: defaultdict[str, set[asyncio.Future]] = defaultdict(set)
        # (loop, non-local name) -> reader task.
        self.readers: dict[tuple, asyncio.Task] = {}

    async def receive(self, channel: str, source: str) -> dict:
        """The next unexpired message of `channel`, read from the list of `source`."""
        loop = asyncio.get_running_loop()
        while True:
            message = self._take(channel)
            if message is not None:
                return message
            reader = self._reader(loop, source)
            waiter = loop.create_future()
            self.waiters[channel].add(waiter)
            try:
                # The reader ends when nobody waits and when its loop's client is
                # closed; a waiter then starts another.
                await asyncio.wait({waiter, reader}, return_when="FIRST_COMPLETED")
            finally:
                self.waiters[channel].discard(waiter)
                if not self.waiters[channel]:
                    del self.waiters[channel]

    def _take(self, channel: str) -> dict | None:
        buffer = self.buffers.get(channel)
        now = time.time()
        while buffer:
            deadline, message = buffer.popleft()
            if deadline >= now:
                return message
        return None

    def _sweep(self) -> None:
        if time.monotonic() - self._swept < self.sweep_every:
            return
        self._swept = time.monotonic()
        now = time.time()
        for channel, buffer in list(self.buffers.items()):
            # Empty, or its newest message expired: nothing left to deliver.
            if (not buffer or buffer[-1][0] < now) and not self.waiters.get(channel):
                del self.buffers[channel]

    def _reader(self, loop: asyncio.AbstractEventLoop, source: str) -> asyncio.Task:
        task = self.readers.get((loop, source))
        if task is None or task.done():
            task = loop.create_task(self._read(source), name=f"layer-reader {source}")
            self.readers[(loop, source)] = task
        return task

    def _waited(self, source: str) -> bool:
        # A copy: receivers on other threads' loops may add waiters meanwhile.
        waited = list(self.waiters.items())
        return any(self._source(ch) == source for ch, w in waited if w)

    @staticmethod
    def _source(channel: str) -> str:
        return channel[: channel.find("!") + 1] if "!" in channel else channel

    async def _read(self, source: str) -> None:
        key = self.key(source)
        # A shared (non-local) channel may have readers in other processes: pop one
        # message at a time so this one takes no more than it is asked for.
        count = self.batch if source.endswith("!") else 1
        backoff = BACKOFF_MIN
        while self._waited(source):
            try:
                reply = await self.client().blmpop(
                    self.blocking_timeout, 1, key, direction="LEFT", count=count
                )
            except (RedisError, OSError) as exc:
                log.warning("layer reader of %s: %r; again in %.1fs", key, exc, backoff)
            except Exception:  # noqa: BLE001 - the reader must outlive any failure
                log.exception("layer reader of %s failed; again in %.1fs", key, backoff)
            else:
                backoff = BACKOFF_MIN
                if reply:
                    self._deliver(reply[1])
                self._sweep()
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _deliver(self, elements: list[bytes]) -> None:
        for raw in elements:
            try:
                deadline, channel, message = envelope.unpack(raw)
            except Exception:  # noqa: BLE001 - one bad element must not stop the rest
                log.exception("layer: dropped an element that does not decode")
                continue
            self.buffers[channel].append((deadline, message))
            for waiter in list(self.waiters.get(channel, ())):
                _wake(waiter)

    def clear(self) -> None:
        """Forget every buffered message (flush)."""
        self.buffers.clear()

    async def stop(self) -> None:
        """Cancel the readers of the running loop (close)."""
        loop = asyncio.get_running_loop()
        tasks = [t for (lp, _), t in self.readers.items() if lp is loop]
        for key in [k for k in self.readers if k[0] is loop]:
            del self.readers[key]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _wake(waiter: asyncio.Future) -> None:
    """Resolve a waiter, from its own loop (receivers may run on another loop)."""
    loop = waiter.get_loop()
    if loop is asyncio.get_running_loop():
        _resolve(waiter)
        return
    try:
        loop.call_soon_threadsafe(_resolve, waiter)
    except RuntimeError:
        pass  # its loop is closed: nobody waits there any more


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
