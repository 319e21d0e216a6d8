"""Streamed text of messages on its way to the database: one buffered stream per
message, and one writer per event loop that stores every stream's new text at most
every STREAM_FLUSH_INTERVAL, in one transaction. Every other write of a message goes
through its stream too (`apply`), after the text buffered before it, in order.
"""

import asyncio
import atexit
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from chats import services
from chats.models import Message
from realtime.db import background_db
from realtime.loops import per_loop

log = logging.getLogger(__name__)


class MessageStream:
    """Buffered persistence of one message; all its writes go through one lock."""

    def __init__(self, *, chat_id: str, message_id: str) -> None:
        self.chat_id = chat_id
        self.message_id = message_id
        self.pending: list[str] = []
        self.lock = asyncio.Lock()

    def add_delta(self, text: str) -> None:
        """Buffer streamed text; the process's writer stores it within an interval."""
        if text:
            self.pending.append(text)
            _writer().mark(self)

    async def flush(self) -> None:
        """Write buffered text now."""
        async with self.lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        try:
            await background_db(services.message_append)(
                chat_id=self.chat_id, message_id=self.message_id, delta=text
            )
        except BaseException:
            self.pending.insert(
                0, text
            )  # nothing streamed is dropped by a failed write
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
            text = "".join(self.pending)
            self.pending.clear()
            services.message_append(
                chat_id=self.chat_id, message_id=self.message_id, delta=text
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
                items.append((stream, "".join(stream.pending)))
                stream.pending.clear()
            rows = [(s.chat_id, s.message_id, text) for s, text in items]
            if rows:
                await background_db(services.message_append_many)(rows=rows)
        except Exception:
            log.exception("writing %d streamed messages failed; retrying", len(items))
            for stream, text in items:
                stream.pending.insert(0, text)
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
