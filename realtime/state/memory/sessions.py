"""Sessions in memory: the record of every live socket and the sessions of each user."""

import time

from realtime.state.base import RemovedSession, SessionRecord
from realtime.state.memory.tables import MemoryTables


class MemorySessions(MemoryTables):
    """The SessionStore of the memory store."""

    async def session_add(
        self, *, sid: str, user_id: int, instance_id: str, channel: str
    ) -> bool:
        """Record a session; True when its user just came online."""
        self.sessions[sid] = SessionRecord(
            sid, user_id, instance_id, channel, time.time()
        )
        self.session_room_sets.setdefault(sid, set())
        user = self.users.setdefault(user_id, set())
        user.add(sid)
        came_online = len(user) == 1
        if came_online:
            self.presence_version += 1
        return came_online

    async def session_register(
        self,
        *,
        sid: str,
        user_id: int,
        instance_id: str,
        channel: str,
        room: str,
        route: bool,
    ) -> bool:
        """Record a session, route its first room here if asked, put it in the room;
        True when its user just came online. (Routes and rooms are the other
        concerns of the store this is composed into.)"""
        came_online = await self.session_add(
            sid=sid, user_id=user_id, instance_id=instance_id, channel=channel
        )
        if route:
            await self.route_add(room=room, channel=channel, instance_id=instance_id)
        await self.room_join(room=room, sid=sid)
        return came_online

    async def session_remove(self, *, sid: str) -> RemovedSession | None:
        """Forget a session, its room memberships and its usage marks."""
        record = self.sessions.pop(sid, None)
        if record is None:
            return None
        rooms = sorted(self.session_room_sets.pop(sid, set()))
        for room in rooms:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self.rooms[room]
        for key in [k for k in self.usage if k[0] == sid]:
            del self.usage[key]
        user = self.users.get(record.user_id, set())
        user.discard(sid)
        went_offline = not user
        if went_offline:
            self.users.pop(record.user_id, None)
            self.presence_version += 1
        return RemovedSession(sid, record.user_id, went_offline, rooms)

    async def session_get(self, *, sid: str) -> SessionRecord | None:
        """The record of one session."""
        return self.sessions.get(sid)

    async def session_touch(self, *, sid: str) -> None:
        """Record that a known session was seen now."""
        record = self.sessions.get(sid)
        if record is not None:
            record.last_seen = time.time()

    async def session_list(self) -> list[SessionRecord]:
        """Every session, oldest first."""
        return sorted(self.sessions.values(), key=lambda s: s.connected_at)

    async def user_sessions(self, *, user_id: int) -> set[str]:
        """The live sessions of a user."""
        return set(self.users.get(user_id, ()))
