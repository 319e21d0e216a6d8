"""Rooms in memory: which sessions are in which room, and their users."""

from realtime.state.memory.tables import MemoryTables


class MemoryRooms(MemoryTables):
    """The RoomStore of the memory store."""

    async def room_join(self, *, room: str, sid: str) -> bool:
        """Put a known session in a room."""
        if sid not in self.sessions:
            return False
        members = self.rooms.setdefault(room, set())
        if sid in members:
            return False
        members.add(sid)
        self.session_room_sets[sid].add(room)
        return True

    async def room_leave(self, *, room: str, sid: str) -> bool:
        """Take a session out of a room."""
        members = self.rooms.get(room)
        if not members or sid not in members:
            return False
        members.discard(sid)
        if not members:
            del self.rooms[room]
        self.session_room_sets.get(sid, set()).discard(room)
        return True

    async def room_sessions(self, *, room: str) -> set[str]:
        """The sessions in a room."""
        return set(self.rooms.get(room, ()))

    async def room_user_ids(self, *, room: str) -> set[int]:
        """The users with a session in a room."""
        return {self.sessions[sid].user_id for sid in self.rooms.get(room, ())}

    async def session_rooms(self, *, sid: str) -> set[str]:
        """The rooms a session is in."""
        return set(self.session_room_sets.get(sid, ()))

    async def room_counts(self) -> dict[str, int]:
        """Rooms with members and their session counts."""
        return {room: len(sids) for room, sids in self.rooms.items() if sids}

    async def room_prune(self, *, room: str, dry_run: bool = False) -> list[str]:
        """Remove (or list) members that no longer hold the room."""
        stale = sorted(
            sid
            for sid in self.rooms.get(room, ())
            if sid not in self.sessions
            or room not in self.session_room_sets.get(sid, ())
        )
        if not dry_run:
            for sid in stale:
                await self.room_leave(room=room, sid=sid)
        return stale
