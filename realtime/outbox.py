"""Room messages leave a process through its outbox, batched per destination instance.

channels-redis spends about 350 us of CPU on one group_send (several Redis round
trips), so one process could emit under 3,000 events/s that way. Here every message
queued while the previous batch was in flight goes out together: one pipelined lookup
of the rooms' routes (room -> instance channels, kept by the hubs in shared state) and
one layer message per destination instance. Messages for this process's own instance
skip Redis and are dispatched in place. When idle a message leaves at once; under load
batches grow by themselves. Order is kept per process: one batch at a time, in order.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from channels.layers import get_channel_layer
from django.conf import settings

from realtime.history import Position, keeps_history, place, record_of
from realtime.loops import per_loop
from realtime.state import UNAVAILABLE, RoutesRebuilding, get_state

log = logging.getLogger(__name__)

# While Redis is unreachable a batch is retried after a backoff that starts here and
# doubles up to RETRY_MAX: quick enough for a failover of a second or two, without
# spinning through OUTBOX_RETRY_SECONDS.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0

# What this loop's hub hands the outbox at start: its own channel, and how messages
# for it are applied in place.
LocalDelivery = tuple[str, Callable[[dict], Awaitable[None]]]


class Outbox:
    """The queue of room messages of one event loop."""

    def __init__(self) -> None:
        # (room, message, the sender's future, its on_sent or None)
        self._queue: list[tuple[str, dict, asyncio.Future, Callable | None]] = []
        self._runner: asyncio.Task | None = None
        self._here: LocalDelivery | None = None

    def deliver_here(self, channel: str, dispatch) -> None:
        """Messages for `channel` (this process's hub) are given to `dispatch`
        instead of the layer; the hub calls this when it starts."""
        self._here = (channel, dispatch)

    async def send(
        self, room: str, message: dict, *, on_sent: Callable | None = None
    ) -> Position | None:
        """Queue a message for every instance with members in `room`; returns once it
        was handed to the layer (or dispatched here), with the position it got in
        the room's history (None: the room keeps none, or the message is volatile).
        `on_sent(position)` runs when it was sent even if the caller was cancelled
        meanwhile (the message goes out all the same)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((room, message, future, on_sent))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        await future
        return _position(room, message)

    async def _run(self) -> None:
        busy = False
        while self._queue:
            # Idle: send at once. Busy (the last batch had company): wait a moment, so
            # receivers get fewer, bigger messages; channels-redis pops one per round
            # trip, and at 10,000 events/s one per event outruns the receiving side.
            await asyncio.sleep(settings.OUTBOX_LINGER if busy else 0)
            batch, self._queue = self._queue, []
            busy = len(batch) > 1
            try:
                await self.deliver_retrying(
                    [(room, message) for room, message, _, _ in batch]
                )
            except BaseException as exc:
                for _, _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for room, message, future, on_sent in batch:
                    if on_sent is not None:
                        on_sent(_position(room, message))
                    if not future.done():
                        future.set_result(None)

    async def deliver_retrying(self, items: list[tuple[str, dict]]) -> None:
        """deliver(), retried with backoff while Redis is unreachable (a restart, a
        failover), for up to OUTBOX_RETRY_SECONDS; senders wait, and order is kept."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.OUTBOX_RETRY_SECONDS
        backoff = RETRY_FIRST
        while True:
            try:
                return await self.deliver(items)
            except (*UNAVAILABLE, RoutesRebuilding) as exc:
                if loop.time() + backoff > deadline:
                    raise
                log.warning(
                    "outbox: Redis unavailable (%s); retrying in %.2fs", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    async def deliver(self, items: list[tuple[str, dict]]) -> None:
        """Send each (room, message) to the instances routed for its room; room
        events of history rooms are stored and given their positions first, in the
        same round trip as the routes lookup (realtime.history)."""
        rooms = list(dict.fromkeys(room for room, _ in items))
        # A retried batch keeps the positions it got: nothing is stored twice.
        unplaced = [
            message
            for room, message in items
            if message.get("type") == "room.emit"
            and "offset" not in message
            and not message.get("volatile")
            and keeps_history(room)
        ]
        positions, routes = await get_state().history_publish(
            appends=[(m["room"], record_of(m)) for m in unplaced], rooms=rooms
        )
        for message, (epoch, offset) in zip(unplaced, positions, strict=True):
            place(message, Position(message["room"], epoch, offset))
        if routes is None:
            raise RoutesRebuilding("routes are being rebuilt after Redis lost them")
        per_channel: dict[str, list[dict]] = defaultdict(list)
        for room, message in items:
            for channel in routes.get(room, ()):
                per_channel[channel].append(message)
        layer = get_channel_layer()
        error = None
        for channel, messages in per_channel.items():
            batch = {"type": "batch", "items": messages}
            try:
                if self._here is not None and channel == self._here[0]:
                    await self._here[1](batch)
                else:
                    await layer.send(channel, batch)
            except Exception as exc:  # one full or dead instance must not stop others
                log.warning(
                    "could not deliver %d messages to %s: %s",
                    len(messages),
                    channel,
                    exc,
                )
                error = error or exc
        if error is not None and len(per_channel) == 1:
            raise error


def _position(room: str, message: dict) -> Position | None:
    offset = message.get("offset")
    return None if offset is None else Position(room, message["epoch"], offset)


# The outbox of the running event loop.
get_outbox = per_loop(Outbox)
