"""The event emitter: stream a model's output to every session of a user and persist it.

    emit = get_event_emitter(user_id, chat_id, message_id)
    await emit({"type": "message", "data": {"content": "Hel"}})

Every call persists by type, then sends `events` {"chat_id", "message_id", "data":
event} to room user:{id} (all of the user's sessions, every instance) carrying only
the new piece, and, when the chat is shared, a copy with `"shared": true, "user_id"`
to room chat:{id} (its collaborators; the owner's sessions are skipped there, having
had theirs). What each type stores, and how, is one row of KINDS: a check of its
data (run before anything is sent) and its write. Streamed text is buffered per
message (chats/streams.py) and written at most every STREAM_FLUSH_INTERVAL, and at
once before any other event type, on done, on cancellation and on graceful shutdown.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from chats import services
from chats.models import ChatGrant, Message
from chats.rooms import chat_room
from chats.streams import (
    MessageStream,
    placed,
    stream_close,
    stream_for,
    stream_place,
)
from realtime.db import background_db
from realtime.emit import room_emit, user_emit
from realtime.errors import BAD_REQUEST, EventError
from realtime.history import Position, keeps_history
from realtime.rooms import user_room
from realtime.state import get_state

# The last event of a message that did not complete; it stores how it ended.
CANCEL_TYPE = "chat:tasks:cancel"
END_STATES = {Message.State.STOPPED, Message.State.FAILED}

_NOT_STORED = object()


class EventEmitter:
    """An async callable emitting a message's events; see get_event_emitter."""

    def __init__(
        self, *, user_id: int, chat_id: str, message_id: str, persist: bool = True
    ) -> None:
        self.user_id = user_id
        self.chat_id = chat_id
        self.message_id = message_id
        self.ids = {"chat_id": chat_id, "message_id": message_id}
        self.persist = persist and not str(chat_id).startswith("local:")
        self._ready = False
        self._chat_checked = False
        # Whether the chat had grants when its first event came: a grant made during
        # a message gets shared copies from the next message on.
        self.shared = False

    async def __call__(self, event: dict) -> None:
        """Persist one event by type, then send it to every session of the user.

        Stored first, so a cancellation between the two (a stop, a shutdown) can never
        leave a client with text the database will not have. For deltas "stored" is a
        buffer append, so this costs them nothing."""
        kind, data = _check_event(event)
        spec = KINDS.get(kind)
        # Malformed events are refused before anything is sent.
        value = spec.check(data) if spec is not None else _NOT_STORED
        stored = self.persist and value is not _NOT_STORED
        on_sent = None
        if self.persist:
            await self._prepare(stored=stored)
            if stored and spec.store is None:
                # Streamed text is a buffer append (no await); the piece learns its
                # event's position when it is sent, even if this call is cancelled
                # meanwhile (the outbox sends it all the same).
                on_sent = partial(placed, stream_for(**self.ids).add_delta(value))
            elif stored:
                await spec.store(self, stream_for(**self.ids), value)
        envelope = {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "data": event,
        }
        position = await user_emit(
            user_id=self.user_id, event="events", data=envelope, on_sent=on_sent
        )
        if stored and on_sent is None and position is not None:
            # Stored before it was sent: the stored message now includes it.
            await stream_place(**self.ids, position=position)
        if self.shared:
            await room_emit(
                room=chat_room(self.chat_id),
                event="events",
                data={**envelope, "shared": True, "user_id": self.user_id},
                skip_user_id=self.user_id,
            )

    async def _prepare(self, *, stored: bool) -> None:
        # Nothing is sent about a chat the user does not own (not_found); the message
        # row is made when the first stored event comes.
        if not self._chat_checked:
            self.shared = await background_db(_chat_shared)(
                user_id=self.user_id, chat_id=self.chat_id
            )
            self._chat_checked = True
        if stored and not self._ready:
            # A new message's empty content is where the user room is now: none of
            # its events has been sent yet.
            room = user_room(self.user_id)
            position = None
            if keeps_history(room):
                epoch, offset = (await get_state().history_top(rooms=[room]))[room]
                position = Position(room, epoch, offset)
            await background_db(services.message_ensure)(
                user_id=self.user_id,
                chat_id=self.chat_id,
                message_id=self.message_id,
                position=position,
            )
            self._ready = True

    async def flush(self) -> None:
        """Write any buffered text now (cancellation, end of generation)."""
        if self.persist:
            await stream_for(**self.ids).flush()

    async def close(self) -> None:
        """Flush and release the message's stream."""
        if self.persist:
            await stream_close(**self.ids)


def _chat_shared(*, user_id: int, chat_id: str) -> bool:
    # not_found for a chat the user does not own; else whether it has grants.
    chat = services.chat_get_for(user_id=user_id, chat_id=chat_id)
    return ChatGrant.objects.filter(chat=chat).exists()


def get_event_emitter(
    user_id: int, chat_id: str, message_id: str, persist: bool = True
) -> EventEmitter:
    """An emitter for one message of one user's chat, usable from any instance."""
    return EventEmitter(
        user_id=user_id, chat_id=chat_id, message_id=message_id, persist=persist
    )


# --- What each event type stores --------------------------------------------------

Store = Callable[[EventEmitter, MessageStream, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Kind:
    """An event type that is stored: `check` turns its data into what is stored
    (or _NOT_STORED) and raises bad_request; `store` writes that, or is None for
    streamed text, which the emitter buffers itself (chats/streams.py)."""

    check: Callable[[Any], Any]
    store: Store | None


def _text(data: Any, key: str = "content") -> str:
    value = data.get(key, "") if isinstance(data, dict) else data
    if not isinstance(value, str):
        raise EventError(BAD_REQUEST, f"{key} must be a string")
    return value


def _list(data: Any, key: str) -> list:
    value = data.get(key) if isinstance(data, dict) else data
    if not isinstance(value, list):
        raise EventError(BAD_REQUEST, f"{key} must be a list")
    return value


def _source(data: Any) -> Any:
    # Sources with a "type" are other payloads (e.g. code execution results).
    return [data] if isinstance(data, dict) and "type" not in data else _NOT_STORED


def _completion(data: Any) -> tuple[str | None, bool, str | None]:
    if not isinstance(data, dict):
        raise EventError(BAD_REQUEST, "chat:completion needs an object")
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        raise EventError(BAD_REQUEST, "chat:completion content must be a string")
    title = data.get("title")
    return (
        content,
        bool(data.get("done")),
        title if isinstance(title, str) and title else None,
    )


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


def _title(data: Any) -> str:
    title = data.get("title") if isinstance(data, dict) else data
    if not isinstance(title, str):
        raise EventError(BAD_REQUEST, "chat:title needs a string title")
    return title


def _tags(data: Any) -> list:
    tags = data.get("tags") if isinstance(data, dict) else data
    if not isinstance(tags, list):
        raise EventError(BAD_REQUEST, "chat:tags needs a list")
    return tags


async def _replace(emitter, stream: MessageStream, text: str) -> None:
    write = partial(services.message_replace, **emitter.ids, content=text)
    await stream.apply(write, drop_pending=True)


def _extend(field: str) -> Store:
    async def extend(emitter, stream: MessageStream, items: list) -> None:
        write = partial(
            services.message_extend, **emitter.ids, field=field, items=items
        )
        await stream.apply(write)

    return extend


async def _complete(emitter, stream: MessageStream, value) -> None:
    content, done, title = value
    write = partial(
        services.message_complete, **emitter.ids, content=content, done=done
    )
    await stream.apply(write, drop_pending=content is not None)
    if title:
        await stream.apply(
            partial(
                services.chat_title_from_answer, chat_id=emitter.chat_id, title=title
            )
        )
    if done:
        await emitter.close()


async def _finish(emitter, stream: MessageStream, value) -> None:
    state, reason = value
    write = partial(services.message_finish, **emitter.ids, state=state, reason=reason)
    await stream.apply(write)
    await emitter.close()


async def _set_title(emitter, stream: MessageStream, title: str) -> None:
    await stream.apply(
        partial(services.chat_set_title, chat_id=emitter.chat_id, title=title)
    )


async def _set_tags(emitter, stream: MessageStream, tags: list) -> None:
    await stream.apply(
        partial(services.chat_set_tags, chat_id=emitter.chat_id, tags=tags)
    )


# Every stored event type (docs/protocol.md §6); the rest are only sent.
KINDS: dict[str, Kind] = {
    "message": Kind(_text, None),
    "chat:message:delta": Kind(_text, None),
    "replace": Kind(_text, _replace),
    "chat:message": Kind(_text, _replace),
    "status": Kind(lambda data: [data], _extend("status_history")),
    "embeds": Kind(partial(_list, key="embeds"), _extend("embeds")),
    "files": Kind(partial(_list, key="files"), _extend("files")),
    "source": Kind(_source, _extend("sources")),
    "citation": Kind(_source, _extend("sources")),
    "chat:completion": Kind(_completion, _complete),
    CANCEL_TYPE: Kind(_end, _finish),
    "chat:title": Kind(_title, _set_title),
    "chat:tags": Kind(_tags, _set_tags),
}


def _check_event(event: Any) -> tuple[str, Any]:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise EventError(BAD_REQUEST, 'an event is {"type": string, "data": ...}')
    return event["type"], event.get("data")
