"""Rooms in Redis: which sessions are in which room, and their users.

p:r:{room}           set     sessions in the room
p:ru:{room}          hash    user_id -> sessions of that user in the room
p:s:{sid}:rooms      set     rooms of the session
"""

from realtime.state.redis.client import SCAN_COUNT, RedisConnection, per_key
from realtime.state.redis.scripts import JOIN, LEAVE, ROOM_PRUNE, flag


class RedisRooms(RedisConnection):
    """The RoomStore of the Redis store."""

    async def room_join(self, *, room: str, sid: str) -> bool:
        """Put a known session in a room."""
        return await self.run(JOIN, room, sid) == 1

    async def room_leave(self, *, room: str, sid: str) -> bool:
        """Take a session out of a room."""
        return await self.run(LEAVE, room, sid) == 1

    async def room_sessions(self, *, room: str) -> set[str]:
        """The sessions in a room, on every instance."""
        return set(await self.client().smembers(f"{self.p}:r:{room}"))

    async def room_user_ids(self, *, room: str) -> set[int]:
        """The users with a session in a room."""
        return {int(uid) for uid in await self.client().hkeys(f"{self.p}:ru:{room}")}

    async def session_rooms(self, *, sid: str) -> set[str]:
        """The rooms a session is in."""
        return set(await self.client().smembers(f"{self.p}:s:{sid}:rooms"))

    async def room_counts(self) -> dict[str, int]:
        """Rooms with members and their session counts (SCAN: for operators)."""
        client = self.client()
        start = len(f"{self.p}:r:")
        keys = [
            key
            async for key in client.scan_iter(match=f"{self.p}:r:*", count=SCAN_COUNT)
        ]
        counts = await per_key(client, "scard", keys)
        return {key[start:]: n for key, n in zip(keys, counts, strict=True) if n}

    async def room_prune(self, *, room: str, dry_run: bool = False) -> list[str]:
        """Remove (or list) members that no longer hold the room."""
        return sorted(await self.run(ROOM_PRUNE, room, flag(dry_run)))
