"""This process's side of the fleet: its sockets, its rooms and its one layer channel.

Every server process (instance) has one channel-layer channel. A room is routed in
shared state to the instance channels that have members: a room emit is serialized
once, travels once per instance with members, and each instance fans the frame out
to its own sockets. The Hub is made of four parts, a file each: the registry of
sessions and rooms (registry.py), the inbox of messages from other instances
(inbox.py), the order of history rooms' events (ordering.py) and the instance's
liveness (liveness.py). It also starts the presence and
usage broadcasts (realtime.presence, realtime.usage) and, with WORKER_IN_PROCESS, a
cleanup worker.
"""

import asyncio
import logging
import os
import secrets
import socket

from channels.layers import get_channel_layer
from django.conf import settings

from realtime.hub.inbox import Inbox
from realtime.hub.liveness import Liveness
from realtime.hub.ordering import Ordering
from realtime.hub.registry import Registry
from realtime.loops import per_loop
from realtime.outbox import get_outbox
from realtime.presence import presence_loop
from realtime.state import StateStore, get_state
from realtime.usage import usage_loop
from realtime.worker import Worker

__all__ = ["Hub", "current_hub", "get_hub", "stop_hub"]

log = logging.getLogger(__name__)

# Shutdown waits this long for the background loops to end.
STOP_GRACE_SECONDS = 2.0


class Hub(Registry, Inbox, Ordering, Liveness):
    """The instance runtime; one per event loop (one per server process)."""

    def __init__(self) -> None:
        Registry.__init__(self)
        self._ordering_init()
        self.instance_id = (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.layer = get_channel_layer()
        self.state: StateStore = get_state()
        self.channel = ""
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._background: set[asyncio.Task] = set()
        self.worker: Worker | None = None  # the in-process cleanup worker

    async def start(self) -> None:
        """Open the instance channel and start the background loops."""
        self.channel = await self.layer.new_channel(prefix="rt-instance.")
        await self.state.instance_refresh(
            instance_id=self.instance_id,
            channel=self.channel,
            ttl=settings.INSTANCE_TTL,
        )
        get_outbox().deliver_here(self.channel, self.dispatch)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive_loop(), name="hub-receive"),
            loop.create_task(self._liveness_loop(), name="hub-liveness"),
            loop.create_task(presence_loop(), name="hub-presence"),
            loop.create_task(usage_loop(), name="hub-usage"),
        ]
        if settings.WORKER_IN_PROCESS:
            self.worker = Worker(owner=self.instance_id)
            self._tasks.append(loop.create_task(self.worker.run(), name="worker"))
        log.info(
            "instance %s started on %s", self.instance_id, type(self.layer).__name__
        )

    async def stop(self) -> None:
        """Stop the loops and remove this instance's sessions from shared state."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # A cancelled channels-redis receive can stay in its blocking read for a while
        # (seen in tests): shutdown waits a bounded time, never for ever.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_GRACE_SECONDS)
            if stuck:
                log.warning("%d hub loops did not stop in time", len(stuck))
        self._tasks = []
        try:
            await self.state.instance_remove(instance_id=self.instance_id)
        except Exception:
            log.warning(
                "could not remove instance %s from shared state", self.instance_id
            )

    def spawn(self, coro) -> None:
        """Run a coroutine in the background, held until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class _Slot:
    """Where a loop's hub is: a future, set once it started (None: no hub)."""

    future: asyncio.Future | None = None


_slot = per_loop(_Slot)


async def get_hub() -> Hub:
    """The hub of the running event loop, started on first use."""
    slot = _slot()
    if slot.future is None:
        future = slot.future = asyncio.get_running_loop().create_future()
        hub = Hub()
        try:
            await hub.start()
        except BaseException as exc:
            slot.future = None
            future.set_exception(exc)
            future.exception()  # mark retrieved; the caller gets the raise below
            raise
        future.set_result(hub)
    return await asyncio.shield(slot.future)


def current_hub() -> Hub | None:
    """The hub of the running loop if it has started, without starting one."""
    future = _slot().future
    if future is None or not future.done() or future.exception() is not None:
        return None
    return future.result()


async def stop_hub() -> None:
    """Stop the running loop's hub (tests, and graceful shutdown)."""
    slot = _slot()
    future, slot.future = slot.future, None
    if future is not None and future.done() and future.exception() is None:
        await future.result().stop()
