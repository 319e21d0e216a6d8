"""The event emitter: stream a model's output to every session of a user and persist it.

    emit = get_event_emitter(user_id, chat_id, message_id)
    await emit({"type": "message", "data": {"content": "Hel"}})

Every call persists by type, then sends `events` {"chat_id", "message_id", "data":
event} to room user:{id} (all of the user's sessions, every instance) carrying only
the new piece. Streamed text is buffered per message and written at most every
STREAM_FLUSH_INTERVAL, and at once before any other event type, on done, on
cancellation and on graceful shutdown.
"""

import asyncio
import atexit
import logging
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from chats import services
from chats.models import Message
from realtime.db import background_db
from realtime.emit import user_emit
from realtime.errors import BAD_REQUEST, EventError
from realtime.loops import per_loop

log = logging.getLogger(__name__)

DELTA_TYPES = {"message", "chat:message:delta"}
REPLACE_TYPES = {"replace", "chat:message"}
SOURCE_TYPES = {"source", "citation"}
# The last event of a message that did not complete; it stores how it ended.
CANCEL_TYPE = "chat:tasks:cancel"
END_STATES = {Message.State.STOPPED, Message.State.FAILED}


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


# Open streams per event loop (asyncio locks and timers belong to one loop).
_streams: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = (
    weakref.WeakKeyDictionary()
)


def _loop_streams() -> dict[tuple[str, str], MessageStream]:
    return _streams.setdefault(asyncio.get_running_loop(), {})


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
    for streams in list(_streams.values()):
        for stream in list(streams.values()):
            try:
                stream.stop_sync()
            except Exception:
                log.exception(
                    "lost buffered text of %s/%s", stream.chat_id, stream.message_id
                )


class EventEmitter:
    """An async callable emitting a message's events; see get_event_emitter."""

    def __init__(
        self,
        *,
        user_id: int,
        chat_id: str,
        message_id: str,
        session_id: str | None = None,
        persist: bool = True,
    ) -> None:
        self.user_id = user_id
        self.chat_id = chat_id
        self.message_id = message_id
        self.session_id = session_id
        self.persist = persist and not str(chat_id).startswith("local:")
        self._ready = False
        self._chat_checked = False

    async def __call__(self, event: dict) -> None:
        """Persist one event by type, then send it to every session of the user.

        Stored first, so a cancellation between the two (a stop, a shutdown) can never
        leave a client with text the database will not have. For deltas "stored" is a
        buffer append, so this costs them nothing."""
        kind, data = _check_event(event)
        value = _validate(kind, data)  # malformed events are refused before sending
        if self.persist:
            await self._prepare(stored=value is not _NOT_STORED)
            if kind in DELTA_TYPES:  # the per-token path: a buffer append, no await
                stream_for(chat_id=self.chat_id, message_id=self.message_id).add_delta(
                    value
                )
            elif value is not _NOT_STORED:
                await self._persist(kind, value)
        await user_emit(
            user_id=self.user_id,
            event="events",
            data={
                "chat_id": self.chat_id,
                "message_id": self.message_id,
                "data": event,
            },
        )

    async def _prepare(self, *, stored: bool) -> None:
        # Nothing is sent about a chat the user does not own (not_found); the message
        # row is made when the first stored event comes.
        if not self._chat_checked:
            await background_db(services.chat_get_for)(
                user_id=self.user_id, chat_id=self.chat_id
            )
            self._chat_checked = True
        if stored and not self._ready:
            await background_db(services.message_ensure)(
                user_id=self.user_id, chat_id=self.chat_id, message_id=self.message_id
            )
            self._ready = True

    async def flush(self) -> None:
        """Write any buffered text now (cancellation, end of generation)."""
        if self.persist:
            await stream_for(chat_id=self.chat_id, message_id=self.message_id).flush()

    async def close(self) -> None:
        """Flush and release the message's stream."""
        if self.persist:
            await stream_close(chat_id=self.chat_id, message_id=self.message_id)

    async def _persist(self, kind: str, value: Any) -> None:
        ids = {"chat_id": self.chat_id, "message_id": self.message_id}
        stream = stream_for(**ids)
        if kind in DELTA_TYPES:
            stream.add_delta(value)
        elif kind in REPLACE_TYPES:
            write = partial(services.message_replace, **ids, content=value)
            await stream.apply(write, drop_pending=True)
        elif kind in LIST_FIELDS:
            write = partial(
                services.message_extend, **ids, field=LIST_FIELDS[kind], items=value
            )
            await stream.apply(write)
        elif kind == "chat:completion":
            content, done, title = value
            write = partial(
                services.message_complete, **ids, content=content, done=done
            )
            await stream.apply(write, drop_pending=content is not None)
            if title:
                await stream.apply(
                    partial(
                        services.chat_title_from_answer,
                        chat_id=self.chat_id,
                        title=title,
                    )
                )
            if done:
                await self.close()
        elif kind == CANCEL_TYPE:
            state, reason = value
            write = partial(services.message_finish, **ids, state=state, reason=reason)
            await stream.apply(write)
            await self.close()
        elif kind == "chat:title":
            await stream.apply(
                partial(services.chat_set_title, chat_id=self.chat_id, title=value)
            )
        elif kind == "chat:tags":
            await stream.apply(
                partial(services.chat_set_tags, chat_id=self.chat_id, tags=value)
            )


def get_event_emitter(
    user_id: int,
    chat_id: str,
    message_id: str,
    session_id: str | None = None,
    persist: bool = True,
) -> EventEmitter:
    """An emitter for one message of one user's chat, usable from any instance."""
    return EventEmitter(
        user_id=user_id,
        chat_id=chat_id,
        message_id=message_id,
        session_id=session_id,
        persist=persist,
    )


_NOT_STORED = object()
# Event types whose data extends a list field of the message.
LIST_FIELDS = {
    "status": "status_history",
    "embeds": "embeds",
    "files": "files",
    "source": "sources",
    "citation": "sources",
}


def _validate(kind: str, data: Any) -> Any:
    """What an event stores, checked before anything is sent; _NOT_STORED if none."""
    if kind in DELTA_TYPES or kind in REPLACE_TYPES:
        return _text(data, "content")
    if kind == "status":
        return [data]
    if kind in ("embeds", "files"):
        return _list(data, kind)
    if kind in SOURCE_TYPES:
        # Sources with a "type" are other payloads (e.g. code execution results).
        return [data] if isinstance(data, dict) and "type" not in data else _NOT_STORED
    if kind == "chat:completion":
        if not isinstance(data, dict):
            raise EventError(BAD_REQUEST, "chat:completion needs an object")
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            raise EventError(BAD_REQUEST, "chat:completion content must be a string")
        title = data.get("title")
        title = title if isinstance(title, str) and title else None
        return content, bool(data.get("done")), title
    if kind == CANCEL_TYPE:
        return _end(data)
    if kind == "chat:title":
        title = data.get("title") if isinstance(data, dict) else data
        if not isinstance(title, str):
            raise EventError(BAD_REQUEST, "chat:title needs a string title")
        return title
    if kind == "chat:tags":
        tags = data.get("tags") if isinstance(data, dict) else data
        if not isinstance(tags, list):
            raise EventError(BAD_REQUEST, "chat:tags needs a list")
        return tags
    return _NOT_STORED


def _end(data: Any) -> tuple[str, str]:
    """How a message ended, from chat:tasks:cancel's {"state"?, "reason"?}: stopped
    unless it says failed; the reason may be missing (an Open WebUI-style {})."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(BAD_REQUEST, f"{CANCEL_TYPE} needs an object")
    state = data.get("state", Message.State.STOPPED)
    if state not in END_STATES:
        raise EventError(BAD_REQUEST, f"{CANCEL_TYPE} state: stopped or failed")
    reason = data.get("reason") or ""
    if reason and reason not in Message.StopReason.values:
        raise EventError(BAD_REQUEST, f"{CANCEL_TYPE} reason is unknown")
    return state, reason


def _check_event(event: Any) -> tuple[str, Any]:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise EventError(BAD_REQUEST, 'an event is {"type": string, "data": ...}')
    return event["type"], event.get("data")


def _text(data: Any, key: str) -> str:
    value = data.get(key, "") if isinstance(data, dict) else data
    if not isinstance(value, str):
        raise EventError(BAD_REQUEST, f"{key} must be a string")
    return value


def _list(data: Any, key: str) -> list:
    value = data.get(key) if isinstance(data, dict) else data
    if not isinstance(value, list):
        raise EventError(BAD_REQUEST, f"{key} must be a list")
    return value
