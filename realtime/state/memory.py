"""In-process state for the embedded default (one server process)."""

import time

from realtime.state.base import (
    ReapedInstance,
    RemovedSession,
    SessionRecord,
    TaskRecord,
)


class MemoryState:
    """Sessions, rooms and presence in dicts; no other process can see them."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}
        self.session_room_sets: dict[str, set[str]] = {}
        self.rooms: dict[str, set[str]] = {}
        self.users: dict[int, set[str]] = {}
        self.throttles: dict[str, float] = {}
        self.presence_version = 0
        self.presence_sent = 0
        self.presence_last = 0.0
        self.tasks: dict[str, TaskRecord] = {}
        self.routes: dict[str, set[str]] = {}

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

    async def session_remove(self, *, sid: str) -> RemovedSession | None:
        """Forget a session and its room memberships."""
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

    async def user_sessions(self, *, user_id: int) -> set[str]:
        """The live sessions of a user."""
        return set(self.users.get(user_id, ()))

    async def online_user_ids(self) -> set[int]:
        """Users with at least one live session."""
        return set(self.users)

    async def instance_refresh(
        self, *, instance_id: str, channel: str, ttl: float
    ) -> bool:
        """One process is always alive to itself."""
        return True

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove every session of the instance."""
        for task_id in [
            t.task_id for t in self.tasks.values() if t.instance_id == instance_id
        ]:
            del self.tasks[task_id]
        sids = [s.sid for s in self.sessions.values() if s.instance_id == instance_id]
        if not sids:
            return None
        rooms: set[str] = set()
        offline = []
        channel = self.sessions[sids[0]].channel
        for sid in sids:
            removed = await self.session_remove(sid=sid)
            rooms.update(removed.rooms)
            if removed.went_offline:
                offline.append(removed.user_id)
        return ReapedInstance(instance_id, channel, sorted(rooms), len(sids), offline)

    async def reap_dead_instances(self) -> list[ReapedInstance]:
        """No other instance shares this memory, so none can die unseen."""
        return []

    async def throttle(self, *, key: str, seconds: float) -> bool:
        """True at most once per `seconds` per key."""
        now = time.monotonic()
        if self.throttles.get(key, float("-inf")) > now:
            return False
        self.throttles[key] = now + seconds
        if len(self.throttles) > 10_000:  # forget expired keys now and then
            self.throttles = {k: t for k, t in self.throttles.items() if t > now}
        return True

    async def presence_claim(self, *, interval: float) -> bool:
        """True if presence changed since the last broadcast and `interval` passed."""
        now = time.monotonic()
        if (
            self.presence_version == self.presence_sent
            or now - self.presence_last < interval
        ):
            return False
        self.presence_sent = self.presence_version
        self.presence_last = now
        return True

    async def route_add(self, *, room: str, channel: str, instance_id: str) -> None:
        """Send the room's events to this instance channel."""
        self.routes.setdefault(room, set()).add(channel)

    async def route_remove(self, *, room: str, channel: str, instance_id: str) -> None:
        """Stop sending the room's events to this instance channel."""
        channels = self.routes.get(room)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.routes[room]

    async def routes_for(self, *, rooms: list[str]) -> dict[str, set[str]]:
        """The instance channels of each room."""
        return {room: set(self.routes.get(room, ())) for room in rooms}

    async def task_add(self, *, record: TaskRecord) -> None:
        """Record a running task."""
        self.tasks[record.task_id] = record

    async def task_remove(self, *, task_id: str) -> None:
        """Forget a finished task."""
        self.tasks.pop(task_id, None)

    async def task_get(self, *, task_id: str) -> TaskRecord | None:
        """One running task."""
        return self.tasks.get(task_id)

    async def task_list(self) -> list[TaskRecord]:
        """Every running task."""
        return sorted(self.tasks.values(), key=lambda t: t.created_at)

    async def task_ids_for_item(self, *, item_id: str) -> set[str]:
        """Running tasks of an item."""
        return {t.task_id for t in self.tasks.values() if t.item_id == item_id}

    async def close(self) -> None:
        """Nothing to release."""
