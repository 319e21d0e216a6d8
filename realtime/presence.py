"""Presence: who is online, fleet-wide. Every hub runs `presence_loop`, which
broadcasts `user-list {"user_ids"}` to the presence room (the sessions that sent
`user-join`) when the online users changed, at most once per PRESENCE_INTERVAL across
the fleet: the state store's claim lets one instance a turn, and only after a change.
"""

from django.conf import settings

from realtime import emit
from realtime.loops import every
from realtime.rooms import PRESENCE_ROOM
from realtime.state import get_state


async def presence_tick() -> bool:
    """Broadcast the online users if they changed and no instance did so lately."""
    state = get_state()
    if not await state.presence_claim(interval=settings.PRESENCE_INTERVAL):
        return False
    user_ids = sorted(await state.online_user_ids())
    await emit.room_emit(
        room=PRESENCE_ROOM, event="user-list", data={"user_ids": user_ids}
    )
    return True


async def presence_loop() -> None:
    """Try a broadcast twice per interval, so a change waits at most about one."""
    await every(settings.PRESENCE_INTERVAL / 2, presence_tick, "presence broadcast")
