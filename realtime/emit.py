"""The server-side API: emit to rooms, users and sessions; move users between rooms;
ask who is online; disconnect users. Works from any instance and from any process that
shares the channel layer (with Redis: management commands, workers, other servers).

Async functions are the primary API; each has a `_sync` twin for sync code (views,
signals, management commands).
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import wire
from realtime.dialects import Variants
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.history import Position
from realtime.layer import RoomEmit, SessionEmit
from realtime.outbox import get_outbox
from realtime.rooms import user_room
from realtime.state import get_state


async def room_emit(
    *,
    room: str,
    event: str,
    data: Any,
    skip_sid: str | None = None,
    skip_user_id: int | None = None,
    variants: Variants | None = None,
    volatile: bool = False,
    on_sent: Callable[[Position | None], None] | None = None,
) -> Position | None:
    """Send an event to every session in a room, on every instance (except skip_sid
    and the sessions of skip_user_id). `variants` gives a dialect its own (event,
    data), or None for nothing (realtime.dialects). In a room that keeps history the
    event gets a position (returned) and a returning socket gets it again, unless it
    is `volatile` (typing, presence: stale a moment later). `on_sent(position)` runs
    once it was sent, even if this call was cancelled meanwhile."""
    message: RoomEmit = {
        "type": "room.emit",
        "room": room,
        "frame": wire.event_frame(event, data),
        "skip": skip_sid,
        # For metrics on the receiving side: events out by name, emit latency.
        "event": event,
        "t": time.time(),
    }
    if skip_user_id is not None:
        message["skip_user"] = skip_user_id
    if variants:
        message["frames"] = _frames(variants)
    if volatile:
        message["volatile"] = True
    return await get_outbox().send(room, message, on_sent=on_sent)


async def user_emit(
    *,
    user_id: int,
    event: str,
    data: Any,
    skip_sid: str | None = None,
    variants: Variants | None = None,
    volatile: bool = False,
    on_sent: Callable[[Position | None], None] | None = None,
) -> Position | None:
    """Send an event to every session of a user (its position in the user room)."""
    return await room_emit(
        room=user_room(user_id),
        event=event,
        data=data,
        skip_sid=skip_sid,
        variants=variants,
        volatile=volatile,
        on_sent=on_sent,
    )


async def session_emit(
    *, sid: str, event: str, data: Any, variants: Variants | None = None
) -> bool:
    """Send an event to one session wherever it is connected; False if it is gone."""
    record = await get_state().session_get(sid=sid)
    if record is None:
        return False
    message: SessionEmit = {
        "type": "session.emit",
        "sid": sid,
        "frame": wire.event_frame(event, data),
        "event": event,
    }
    if variants:
        message["frames"] = _frames(variants)
    await get_channel_layer().send(record.channel, message)
    return True


def _frames(variants: Variants) -> dict[str, str | None]:
    return {
        protocol: None if variant is None else wire.event_frame(*variant)
        for protocol, variant in variants.items()
    }


async def room_enter_for_users(*, room: str, user_ids: list[int]) -> None:
    """Make every live session of these users enter a room, on whatever instance."""
    await _to_users("room.enter", user_ids, room=room)


async def room_leave_for_users(*, room: str, user_ids: list[int]) -> None:
    """Make every live session of these users leave a room, on whatever instance."""
    await _to_users("room.leave", user_ids, room=room)


async def user_disconnect(
    *, user_id: int, code: int = CLOSE_UNAUTHORIZED, reason: str = ""
) -> None:
    """Close every socket of a user on every instance (deactivation, new password)."""
    await _to_users("user.close", [user_id], code=code, reason=reason)


async def session_disconnect(
    *, sid: str, code: int = CLOSE_UNAUTHORIZED, reason: str = ""
) -> bool:
    """Close one socket wherever it is connected; False if it is gone."""
    record = await get_state().session_get(sid=sid)
    if record is None:
        return False
    await get_channel_layer().send(
        record.channel,
        {"type": "session.close", "sid": sid, "code": code, "reason": reason},
    )
    return True


async def online_user_ids() -> list[int]:
    """Users with a live session on any instance, sorted."""
    return sorted(await get_state().online_user_ids())


async def room_user_ids(*, room: str) -> list[int]:
    """Users with a session in a room, sorted."""
    return sorted(await get_state().room_user_ids(room=room))


async def room_sessions(*, room: str) -> list[str]:
    """Sessions in a room, sorted."""
    return sorted(await get_state().room_sessions(room=room))


async def _to_users(kind: str, user_ids: list[int], **fields: Any) -> None:
    # The user room is routed to exactly the instances that have a session of the
    # user, so only they get the message.
    outbox = get_outbox()
    await asyncio.gather(
        *(
            outbox.send(user_room(uid), {"type": kind, "user_ids": [uid], **fields})
            for uid in dict.fromkeys(int(u) for u in user_ids)
        )
    )


room_emit_sync = async_to_sync(room_emit)
user_emit_sync = async_to_sync(user_emit)
session_emit_sync = async_to_sync(session_emit)
room_enter_for_users_sync = async_to_sync(room_enter_for_users)
room_leave_for_users_sync = async_to_sync(room_leave_for_users)
user_disconnect_sync = async_to_sync(user_disconnect)
session_disconnect_sync = async_to_sync(session_disconnect)
online_user_ids_sync = async_to_sync(online_user_ids)
room_user_ids_sync = async_to_sync(room_user_ids)
room_sessions_sync = async_to_sync(room_sessions)
