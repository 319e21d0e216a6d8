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
        self.usage: dict[tuple[str, str], float] = {}  # (sid, model) -> expires at
        self.usage_sent: list[str] = []
        self.usage_last = float("-inf")
        self.locks: dict[str, tuple[str, float]] = {}  # name -> (owner, expires at)
        self.instances: set[str] = set()

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
        True when its user just came online."""
        came_online = await self.session_add(
            sid=sid, user_id=user_id, instance_id=instance_id, channel=channel
        )
        if route:
            await self.route_add(room=room, channel=channel, instance_id=instance_id)
        await self.room_join(room=room, sid=sid)
        return came_online

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
        self.instances.add(instance_id)
        return True

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove every session of the instance."""
        self.instances.discard(instance_id)
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

    async def usage_mark(self, *, model: str, sid: str, ttl: float) -> bool:
        """Mark that a known session uses a model for the next `ttl` seconds."""
        if sid not in self.sessions:
            return False
        self.usage[(sid, model)] = time.time() + ttl
        return True

    async def usage_models(self) -> dict[str, set[str]]:
        """Models with a live mark, and their sessions."""
        now = time.time()
        models: dict[str, set[str]] = {}
        for (sid, model), expires in self.usage.items():
            if expires > now:
                models.setdefault(model, set()).add(sid)
        return models

    async def usage_expire(self, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Delete expired marks (or only list them)."""
        now = time.time()
        gone = sorted(k for k, expires in self.usage.items() if expires <= now)
        if not dry_run:
            for key in gone:
                del self.usage[key]
        return gone

    async def usage_claim(self, *, interval: float) -> list[str] | None:
        """The models in use if they changed and `interval` passed since the last."""
        models = sorted(await self.usage_models())
        now = time.monotonic()
        if models == self.usage_sent or now - self.usage_last < interval:
            return None
        self.usage_sent = models
        self.usage_last = now
        return models

    def _lock_holder(self, name: str) -> str | None:
        owner, expires = self.locks.get(name, (None, 0.0))
        return owner if expires > time.monotonic() else None

    async def lock_acquire(self, *, name: str, owner: str, ttl: float) -> bool:
        """Take the lock if nobody holds it."""
        if self._lock_holder(name) is not None:
            return False
        self.locks[name] = (owner, time.monotonic() + ttl)
        return True

    async def lock_renew(self, *, name: str, owner: str, ttl: float) -> bool:
        """Extend the lock if `owner` holds it."""
        if self._lock_holder(name) != owner:
            return False
        self.locks[name] = (owner, time.monotonic() + ttl)
        return True

    async def lock_release(self, *, name: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it."""
        if self._lock_holder(name) != owner:
            return False
        del self.locks[name]
        return True

    async def lock_owner(self, *, name: str) -> tuple[str | None, float]:
        """Who holds the lock and the seconds left."""
        owner = self._lock_holder(name)
        left = self.locks[name][1] - time.monotonic() if owner else 0.0
        return owner, left

    async def session_list(self) -> list[SessionRecord]:
        """Every session, oldest first."""
        return sorted(self.sessions.values(), key=lambda s: s.connected_at)

    async def room_counts(self) -> dict[str, int]:
        """Rooms with members and their session counts."""
        return {room: len(sids) for room, sids in self.rooms.items() if sids}

    async def instance_list(self) -> dict[str, bool]:
        """This process's instances are alive while registered."""
        return dict.fromkeys(sorted(self.instances), True)

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

    async def task_prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove (or list) task records of instances that are gone."""
        stale = sorted(
            t.task_id
            for t in self.tasks.values()
            if t.instance_id not in self.instances
        )
        if not dry_run:
            for task_id in stale:
                del self.tasks[task_id]
        return stale

    async def close(self) -> None:
        """Nothing to release."""
