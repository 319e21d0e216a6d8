"""Streamed text of messages on its way to the database: one buffered stream per
message, and one writer per event loop that stores every stream's new text at most
every STREAM_FLUSH_INTERVAL, in one transaction. Every other write of a message goes
through its stream too (`apply`), after the text buffered before it, in order.
"""

import asyncio
import atexit
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from chats import services
from chats.models import Message
from realtime.db import background_db
from realtime.history import Position
from realtime.loops import per_loop

log = logging.getLogger(__name__)


# The position of a piece that was sent without one (its room keeps no history).
NOWHERE = ()


class MessageStream:
    """Buffered persistence of one message; all its writes go through one lock.

    Each buffered piece of text waits with the position its event got in the user
    room's history (None until its emit returns): the periodic writer stores only
    the pieces whose positions are known, with the last of them, so the stored text
    is always exactly the events up to the stored position (realtime.history)."""

    def __init__(self, *, chat_id: str, message_id: str) -> None:
        self.chat_id = chat_id
        self.message_id = message_id
        self.pending: list[list] = []  # [text, Position | None]
        self.lock = asyncio.Lock()

    def add_delta(self, text: str) -> list | None:
        """Buffer streamed text; the process's writer stores it within an interval.
        The piece, for `placed` once its event was sent (None: nothing buffered)."""
        if not text:
            return None
        piece = [text, None]
        self.pending.append(piece)
        _writer().mark(self)
        return piece

    def take(self, *, placed_only: bool = False) -> tuple[str, Position | None]:
        """Remove buffered text to write (all of it, or the pieces whose positions
        are known): the text, and the position it brings the stored message to."""
        count = len(self.pending)
        if placed_only:
            while count and self.pending[count - 1][1] is None:
                count -= 1
        pieces, self.pending = self.pending[:count], self.pending[count:]
        positions = [p for _, p in pieces if p]
        return "".join(t for t, _ in pieces), positions[-1] if positions else None

    def give_back(self, text: str, position: Position | None) -> None:
        """Put text whose write failed back in front; nothing streamed is dropped."""
        self.pending.insert(0, [text, position])

    async def flush(self) -> None:
        """Write buffered text now."""
        async with self.lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self.pending:
            return
        text, position = self.take()
        try:
            await background_db(services.message_append)(
                chat_id=self.chat_id,
                message_id=self.message_id,
                delta=text,
                position=position,
            )
        except BaseException:
            self.give_back(text, position)
            raise

    async def apply(
        self, write: Callable[[], Any], *, drop_pending: bool = False
    ) -> None:
        """Flush (or drop superseded) text, then run a write, in order."""
        async with self.lock:
            if drop_pending:
                self.pending.clear()
            await self._flush_locked()
            await background_db(write)()

    def flush_sync(self) -> None:
        """Write buffered text from sync code (interpreter exit)."""
        if self.pending:
            text, position = self.take()
            services.message_append(
                chat_id=self.chat_id,
                message_id=self.message_id,
                delta=text,
                position=position,
            )

    def stop_sync(self) -> None:
        """Flush, and end the message as stopped by a shutdown (interpreter exit:
        an open stream will get no more events)."""
        self.flush_sync()
        services.message_finish(
            chat_id=self.chat_id,
            message_id=self.message_id,
            state=Message.State.STOPPED,
            reason=Message.StopReason.SHUTDOWN,
        )


def placed(piece: list | None, position: Position | None) -> None:
    """A buffered piece's event was sent, at this position (None: its room keeps no
    history, so it has none, and it may be stored all the same)."""
    if piece is not None and piece[1] is None:
        piece[1] = NOWHERE if position is None else position


class StreamWriter:
    """Writes the buffered text of every open stream of a loop, once per interval, in
    one transaction: one thread hop and one executemany instead of one per message."""

    def __init__(self) -> None:
        self.dirty: set[MessageStream] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None

    def mark(self, stream: MessageStream) -> None:
        self.dirty.add(stream)
        if self._timer is None and (self._task is None or self._task.done()):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(settings.STREAM_FLUSH_INTERVAL, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self.write())

    async def write(self) -> None:
        """Store the buffered text of every stream that is not busy writing itself."""
        # A locked stream is writing something else in order; it stays dirty for the
        # next round. Acquiring an unlocked asyncio.Lock does not yield.
        streams = [s for s in self.dirty if s.pending and not s.lock.locked()]
        self.dirty.difference_update(streams)
        self.dirty = {s for s in self.dirty if s.pending}
        for stream in streams:
            await stream.lock.acquire()
        items = []
        try:
            for stream in streams:
                # A piece whose emit is still in flight waits for the next round.
                text, position = stream.take(placed_only=True)
                if stream.pending:
                    self.dirty.add(stream)
                if text:
                    items.append((stream, text, position))
            rows = [(s.chat_id, s.message_id, t, p) for s, t, p in items]
            if rows:
                await background_db(services.message_append_many)(rows=rows)
        except Exception:
            log.exception("writing %d streamed messages failed; retrying", len(items))
            for stream, text, position in items:
                stream.give_back(text, position)
                self.dirty.add(stream)
        finally:
            for stream in streams:
                stream.lock.release()
            if self.dirty and self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(
                    settings.STREAM_FLUSH_INTERVAL, self._start
                )


_writer = per_loop(StreamWriter)


# Open streams per event loop (asyncio locks and timers belong to one loop):
# (chat id, message id) -> MessageStream.
_loop_streams = per_loop(dict)


def stream_for(*, chat_id: str, message_id: str) -> MessageStream:
    """The open stream of a message, opened on first use."""
    streams = _loop_streams()
    key = (chat_id, message_id)
    stream = streams.get(key)
    if stream is None:
        stream = streams[key] = MessageStream(chat_id=chat_id, message_id=message_id)
    return stream


async def stream_place(*, chat_id: str, message_id: str, position: Position) -> None:
    """Record that the stored message includes the event at `position`, after the
    text buffered before it (an event stored before it was sent: a status, the
    completion)."""
    stream = _loop_streams().get((chat_id, message_id))
    write = partial(
        services.message_place,
        chat_id=chat_id,
        message_id=message_id,
        position=position,
    )
    if stream is None:  # closed: nothing of the message is buffered any more
        await background_db(write)()
    else:
        await stream.apply(write)


async def stream_close(*, chat_id: str, message_id: str) -> None:
    """Flush and forget a message's stream."""
    stream = _loop_streams().pop((chat_id, message_id), None)
    if stream is not None:
        await stream.flush()


async def streams_flush_all() -> int:
    """Flush every open stream of this loop (graceful shutdown); returns how many."""
    streams = list(_loop_streams().values())
    for stream in streams:
        try:
            await stream.flush()
        except Exception:
            log.exception("could not flush %s/%s", stream.chat_id, stream.message_id)
    return len(streams)


@atexit.register
def _flush_at_exit() -> None:
    # Last resort for servers without an ASGI lifespan (daphne): by now the loop has
    # stopped, so write what is still buffered with the sync ORM, and record that
    # the server's stop ended these messages (no event can tell the clients now).
    for streams in list(_loop_streams.made.values()):
        for stream in list(streams.values()):
            try:
                stream.stop_sync()
            except Exception:
                log.exception(
                    "lost buffered text of %s/%s", stream.chat_id, stream.message_id
                )
