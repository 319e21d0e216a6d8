"""Socket events of channels: join-channels, events:channel (typing, last_read_at), and
the rooms user-join enters."""

import time
from typing import Any, Literal

from channels.db import database_sync_to_async

from channels_app import selectors, services
from channels_app.rooms import channel_room
from realtime import events
from realtime.emit import room_emit
from realtime.errors import FORBIDDEN, RATE_LIMITED, EventError
from realtime.events import Empty, Payload, on
from realtime.hub import get_hub
from realtime.session import per_session

# A session relays at most one typing event per channel this often (seconds).
TYPING_INTERVAL = 0.5

# Per socket: channel room -> when its last typing event was relayed.
typing_sent = per_session(dict)


@events.user_rooms
async def channel_rooms(user_id: int) -> list[str]:
    """Every channel room of the user (entered by user-join)."""
    ids = await database_sync_to_async(selectors.channel_ids_for)(user_id=user_id)
    return [channel_room(cid) for cid in ids]


@on("join-channels", schema=Empty)
async def join_channels(session, payload: Empty) -> dict:
    """Enter the room of every channel of the user."""
    hub = await get_hub()
    rooms = await channel_rooms(session.user_id)
    for room in rooms:
        await hub.join(session, room)
    return {"channel_ids": sorted(room.split(":", 1)[1] for room in rooms)}


class ChannelEventData(Payload):
    type: Literal["typing", "last_read_at"]
    data: dict[str, Any] | None = None


class ChannelEvent(Payload):
    """Open WebUI clients also send message_id and their user; both are ignored (the
    user always comes from the session)."""

    channel_id: str
    data: ChannelEventData
    message_id: str | int | None = None
    user: Any = None


@on("events:channel", schema=ChannelEvent)
async def channel_event(session, payload: ChannelEvent) -> dict | None:
    """Typing indicators (relayed to the room) and the sender's own read position."""
    room = channel_room(payload.channel_id)
    if payload.data.type == "last_read_at":
        at = await database_sync_to_async(services.channel_mark_read)(
            user_id=session.user_id, channel_id=payload.channel_id
        )
        return {"last_read_at": at.isoformat()}
    if room not in session.rooms:
        raise EventError(FORBIDDEN, "not in this channel's room (send join-channels)")
    sent = typing_sent(session)
    now = time.monotonic()
    if now - sent.get(room, float("-inf")) < TYPING_INTERVAL:
        raise EventError(RATE_LIMITED, "typing is relayed at most every 0.5 s")
    sent[room] = now
    typing = bool((payload.data.data or {}).get("typing", True))
    await room_emit(
        room=room,
        event="events:channel",
        data={
            "channel_id": payload.channel_id,
            "message_id": None,
            "data": {"type": "typing", "data": {"typing": typing}},
            "user": {"id": session.user_id, "name": session.user.display_name},
        },
        skip_sid=session.sid,
    )
    return None
