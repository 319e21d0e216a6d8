"""Socket events of chats: `events:chat`, Open WebUI's chat presence.

    {"chat_id", "data": {"type": "join" | "leave" | "typing" | "last_read_at",
                         "data"?: {"typing": bool}}}

`join` enters room chat:{id} (read access: the owner or a grantee), where presence,
typing and the shared copies of the chat's stream arrive; `typing` needs write access;
`last_read_at` is stored and answered to the user's sessions as `chat:list`. An
openwebui socket gets the bare boolean its client reads as the answer to join, leave
and typing: `false` when refused (its page then reloads the chat), with an `error`
event that says why. A realtime socket gets the usual error ack.
"""

from typing import Any, Literal

from pydantic import Field, model_validator

from chats import selectors, services
from chats.presence import (
    presence_broadcast,
    typing_end,
    typing_end_all,
    typing_set,
)
from chats.rooms import CHAT_ROOM_PREFIX, chat_room
from realtime import emit, events, wire
from realtime.db import background_db
from realtime.dialects import OPENWEBUI
from realtime.errors import BAD_REQUEST, FORBIDDEN, EventError
from realtime.events import Payload, on
from realtime.hub import get_hub
from realtime.session import per_session

# The `events` type that answers last_read_at (Open WebUI's sidebar reads it).
LIST_TYPE = "chat:list"
# Chats one socket may have joined at once. Open WebUI's page has one open and leaves
# it on navigation; the bound keeps what one socket holds in the state store small.
CHATS_PER_SESSION = 20
# Answered with the bare boolean on openwebui sockets.
BOOLEAN_TYPES = {"join", "leave", "typing"}

# A session's access to the chats it joined, read at join. Any grant change takes the
# user's sessions out of the chat's room (services.chat_grant), and typing checks
# membership first, so a cached access is never used after a change.
_joined = per_session(dict)  # chat id -> "read" or "write"


class TypingData(Payload):
    typing: bool


class ChatEventData(Payload):
    type: Literal["join", "leave", "typing", "last_read_at"]
    data: TypingData | None = None

    @model_validator(mode="after")
    def _data_only_for_typing(self):
        if (self.type == "typing") != (self.data is not None):
            raise ValueError("data {typing: bool} goes with type typing, and only it")
        return self


class ChatEvent(Payload):
    """Identity fields are accepted and ignored: the user is the session's."""

    chat_id: str = Field(min_length=1, max_length=64)
    data: ChatEventData
    user_id: Any = None
    user_name: Any = None
    user_color: Any = None
    socket_id: Any = None
    auth: Any = None


@on("events:chat", schema=ChatEvent)
async def chat_event(session, payload: ChatEvent) -> Any:
    """Join or leave a chat's room, type in it, or mark it read."""
    kind = payload.data.type
    try:
        return await ACTIONS[kind](session, payload)
    except EventError as exc:
        if session.protocol != OPENWEBUI or kind not in BOOLEAN_TYPES:
            raise
        # Open WebUI's client reads only the boolean; the error event tells a person
        # (or a log) why it was false.
        session.push(wire.error_event_frame(exc, "events:chat"))
        return False


async def _join(session, payload: ChatEvent) -> bool:
    joined = [r for r in session.rooms if r.startswith(CHAT_ROOM_PREFIX)]
    if len(joined) >= CHATS_PER_SESSION and chat_room(payload.chat_id) not in joined:
        raise EventError(
            BAD_REQUEST, f"at most {CHATS_PER_SESSION} joined chats per socket"
        )
    chat, access = await _access(session, payload.chat_id)
    _joined(session)[chat.id] = access
    await (await get_hub()).join(session, chat_room(chat.id))
    await presence_broadcast(chat_id=chat.id)
    return True


async def _leave(session, payload: ChatEvent) -> bool:
    # Leaving a chat one is not in changes nothing and is not an error (Open WebUI's
    # client leaves on every navigation).
    await typing_end(session, chat_id=payload.chat_id)
    if await (await get_hub()).leave(session, chat_room(payload.chat_id)):
        await presence_broadcast(chat_id=payload.chat_id)
    return True


async def _typing(session, payload: ChatEvent) -> bool:
    if chat_room(payload.chat_id) not in session.rooms:
        raise EventError(FORBIDDEN, "join the chat first (events:chat join)")
    if _joined(session).get(payload.chat_id) != selectors.WRITE:
        raise EventError(FORBIDDEN, "read-only access to this chat")
    await typing_set(session, chat_id=payload.chat_id, typing=payload.data.data.typing)
    return True


async def _access(session, chat_id: str) -> tuple:
    def read():
        chat = selectors.chat_get_shared_for(chat_id=chat_id, user_id=session.user_id)
        return chat, selectors.chat_access(chat=chat, user_id=session.user_id)

    return await background_db(read)()


async def _last_read_at(session, payload: ChatEvent) -> dict:
    def mark():
        chat = selectors.chat_get_shared_for(
            chat_id=payload.chat_id, user_id=session.user_id
        )
        return services.chat_mark_read(chat=chat, user_id=session.user_id)

    at = await background_db(mark)()
    # Unix seconds, as Open WebUI's chat times are.
    answer = {"chat_id": payload.chat_id, "last_read_at": int(at.timestamp())}
    await emit.user_emit(
        user_id=session.user_id,
        event="events",
        data={
            "chat_id": payload.chat_id,
            "data": {"type": LIST_TYPE, "data": answer},
        },
    )
    return answer


ACTIONS = {
    "join": _join,
    "leave": _leave,
    "typing": _typing,
    "last_read_at": _last_read_at,
}


@events.on_disconnect
async def chat_disconnect(session) -> None:
    """End the session's typing and take it out of its chats, telling who remains."""
    await typing_end_all(session)
    hub = await get_hub()
    for room in [r for r in session.rooms if r.startswith(CHAT_ROOM_PREFIX)]:
        await hub.leave(session, room)
        await presence_broadcast(chat_id=room[len(CHAT_ROOM_PREFIX) :])
