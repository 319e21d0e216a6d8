"""Core client events: user-join, heartbeat, user-list (names as in Open WebUI), and
history (resumable delivery)."""

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from realtime import events, history
from realtime.errors import FORBIDDEN, EventError
from realtime.events import Empty, Payload, on
from realtime.hub import get_hub
from realtime.rooms import PRESENCE_ROOM, user_room
from realtime.state import get_state


class UserJoinPayload(Payload):
    """Open WebUI clients send their token again as auth; identity comes from the
    session, so it is accepted and ignored."""

    auth: dict[str, Any] | None = None


@on("user-join", schema=UserJoinPayload)
async def user_join(session, payload: UserJoinPayload) -> dict:
    """Enter the user's room, the presence room and every room apps provide."""
    hub = await get_hub()
    rooms = [user_room(session.user_id), PRESENCE_ROOM]
    for provider in events.room_providers():
        rooms.extend(await provider(session.user_id))
    for room in dict.fromkeys(rooms):
        await hub.join(session, room)
    return {"id": session.user_id, "name": session.user.display_name}


@on("heartbeat", schema=Empty)
async def heartbeat(session, payload: Empty) -> None:
    """Mark the session seen and the user active (the user's row at most once per
    ACTIVE_WRITE_INTERVAL)."""
    await get_state().session_touch(sid=session.sid)
    if await get_state().throttle(
        key=f"active:{session.user_id}", seconds=settings.ACTIVE_WRITE_INTERVAL
    ):
        await user_touch_active(user_id=session.user_id)


@on("user-list", schema=Empty)
async def user_list(session, payload: Empty) -> dict:
    """Users online on any instance.

    The answer can be overtaken: a presence broadcast read after it but pushed
    before its ack would be undone by the older ack on the client, and no later
    broadcast comes without another change. So once the ack is out, the set is read
    again and a fresh `user-list` event follows if it moved."""
    user_ids = sorted(await get_state().online_user_ids())
    (await get_hub()).spawn(_user_list_recheck(session, user_ids))
    return {"user_ids": user_ids}


async def _user_list_recheck(session, answered: list[int]) -> None:
    # Runs after the handler returned, so after its ack was queued.
    try:
        now = sorted(await get_state().online_user_ids())
    except Exception:
        return  # the next broadcast will do; nothing to recheck against
    if now != answered and not session.closed:
        session.emit("user-list", {"user_ids": now})


@database_sync_to_async
def user_touch_active(*, user_id: int) -> None:
    """Set the user's last_active_at to now."""
    from realtime.models import User

    User.objects.filter(pk=user_id).update(last_active_at=timezone.now())


class HistoryPayload(Payload):
    """A room the socket is in, and the position after which it wants its events."""

    room: history.RoomName
    epoch: history.Epoch
    offset: history.Offset


@on("history", schema=HistoryPayload)
async def history_get(session, payload: HistoryPayload) -> dict:
    """The room's events after a position, as this socket would have got them (a
    page that loaded a chat from REST mid-stream reads what came after it)."""
    if payload.room not in session.rooms:
        raise EventError(FORBIDDEN, "history: not in that room")
    if not history.keeps_history(payload.room):
        return {
            "recovered": False,
            "reason": "disabled",
            "epoch": "",
            "offset": 0,
            "events": [],
        }
    read = await get_state().history_read(
        room=payload.room,
        epoch=payload.epoch,
        offset=payload.offset,
        limit=settings.HISTORY_SIZE,
    )
    answer = {
        "recovered": read.status == "ok",
        "epoch": read.epoch,
        "offset": read.offset,
        "events": history.events_of(session, payload.room, read),
    }
    if read.status != "ok":
        answer["reason"] = read.status
    return answer
