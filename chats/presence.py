"""Who has a chat open, and who is typing in it.

Presence is the set of users with a session in room chat:{id}, read from the state
store, so every instance answers the same. It is sent to the room as `events`
`chat:presence {users}` whenever someone joins or leaves (a leave, a disconnect, a
revoked grant). Typing is per session (a session lives on one instance, so its timer
does too): relayed to the room, skipping the sender, and ended by the server
CHAT_TYPING_TIMEOUT after the last refresh, since Open WebUI's client may never send
`typing: false`.
"""

import asyncio
import time
from dataclasses import dataclass

from django.conf import settings

from chats.rooms import chat_room
from chats.selectors import users_public
from realtime import emit
from realtime.db import background_db
from realtime.errors import RATE_LIMITED, EventError
from realtime.hub import current_hub
from realtime.session import per_session

PRESENCE_TYPE = "chat:presence"
TYPING_TYPE = "typing"


def presence_event(*, chat_id: str, users: list[dict]) -> dict:
    """The `events` data of a chat's presence."""
    return {
        "chat_id": chat_id,
        "data": {"type": PRESENCE_TYPE, "data": {"users": users}},
    }


async def presence_broadcast(*, chat_id: str, without: int | None = None) -> None:
    """Send the chat's room who is in it (`without`: a user who is being taken out,
    whose sessions may not have left yet on their instances)."""
    room = chat_room(chat_id)
    user_ids = [u for u in await emit.room_user_ids(room=room) if u != without]
    users = await background_db(users_public)(user_ids=user_ids)
    await emit.room_emit(
        room=room,
        event="events",
        data=presence_event(chat_id=chat_id, users=users),
        volatile=True,  # the next broadcast supersedes it
    )


def typing_event(*, chat_id: str, user, typing: bool) -> dict:
    """The `events` data of a typing change, in Open WebUI's shape."""
    return {
        "chat_id": chat_id,
        "user_id": user.id,
        "user": {"id": user.id, "name": user.display_name},
        "shared": True,
        "data": {"type": TYPING_TYPE, "data": {"typing": typing}},
    }


@dataclass(slots=True)
class Typing:
    """A session's typing in one chat: its timeout while typing, and when `typing:
    true` was last relayed."""

    timer: asyncio.TimerHandle | None = None
    relayed_at: float = float("-inf")


# Per socket: chat id -> Typing.
_typing = per_session(dict)


async def typing_set(session, *, chat_id: str, typing: bool) -> None:
    """Relay a typing change to the chat's room and (re)arm its timeout.

    `typing: true` is relayed at most once per CHAT_TYPING_INTERVAL: a refresh sooner
    only re-arms the timeout, a start sooner is rate_limited. `typing: false` ends a
    relayed start, so each start is followed by at most one end."""
    entry = _typing(session).setdefault(chat_id, Typing())
    active = entry.timer is not None
    if not typing:
        if active:
            await typing_end(session, chat_id=chat_id)
        return
    now = time.monotonic()
    soon = now - entry.relayed_at < settings.CHAT_TYPING_INTERVAL
    if soon and not active:
        raise EventError(
            RATE_LIMITED,
            f"typing starts at most every {settings.CHAT_TYPING_INTERVAL:g} s",
        )
    _arm(session, chat_id, entry)
    if not soon:
        entry.relayed_at = now
        await _relay(session, chat_id, True)


async def typing_end(session, *, chat_id: str) -> None:
    """End the session's typing in a chat, telling the room; nothing if not typing."""
    entry = _typing(session).get(chat_id)
    if entry is None or entry.timer is None:
        return
    entry.timer.cancel()
    entry.timer = None
    await _relay(session, chat_id, False)


async def typing_end_all(session) -> None:
    """End every typing of a session (it disconnects)."""
    for chat_id in list(_typing(session)):
        await typing_end(session, chat_id=chat_id)


def _arm(session, chat_id: str, entry: Typing) -> None:
    if entry.timer is not None:
        entry.timer.cancel()
    loop = asyncio.get_running_loop()
    entry.timer = loop.call_later(
        settings.CHAT_TYPING_TIMEOUT, _timed_out, session, chat_id
    )


def _timed_out(session, chat_id: str) -> None:
    # Marked ended here, synchronously, so a refresh arriving before the relay below
    # runs starts a new typing instead of being ended by it.
    entry = _typing(session).get(chat_id)
    hub = current_hub()
    if entry is None or entry.timer is None or hub is None:
        return
    entry.timer = None
    hub.spawn(_relay(session, chat_id, False))


async def _relay(session, chat_id: str, typing: bool) -> None:
    await emit.room_emit(
        room=chat_room(chat_id),
        event="events",
        data=typing_event(chat_id=chat_id, user=session.user, typing=typing),
        skip_sid=session.sid,
        volatile=True,  # stale a moment later: never replayed (realtime.history)
    )
