"""What every state store answers, one small protocol per concern.

Sessions, rooms, routes, presence, instance liveness, tasks, model usage and locks:
each is a protocol of a few methods, and `StateStore` is all of them together, which
is what `get_state()` returns. The memory store serves one process (the embedded
default); the Redis store is shared by every instance of a fleet. Both implement
every protocol with the same semantics, tested side by side, and each backend keeps
one file per protocol.
"""

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class SessionRecord:
    """A live socket as the fleet knows it."""

    sid: str
    user_id: int
    instance_id: str
    channel: str
    connected_at: float
    last_seen: float = 0.0  # last heartbeat (0: none yet)


@dataclass(slots=True)
class RemovedSession:
    """What removing a session changed."""

    sid: str
    user_id: int
    went_offline: bool
    rooms: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReapedInstance:
    """An instance whose liveness key expired, and the sessions removed with it."""

    instance_id: str
    channel: str
    rooms: list[str]
    sessions: int
    went_offline: list[int]


@dataclass(slots=True)
class TaskRecord:
    """A running distributed task and the instance that runs it."""

    task_id: str
    item_id: str
    user_id: int | None
    instance_id: str
    channel: str
    created_at: float


@dataclass(slots=True)
class HistoryRead:
    """What a room's history holds after a position: `status` "ok" with the
    (offset, record) items after it, or why it cannot say ("epoch", "trimmed",
    "expired", "ahead"); epoch and offset are the room's position now."""

    status: str
    epoch: str
    offset: int
    items: list[tuple[int, str]] = field(default_factory=list)


class RoutesRebuilding(Exception):
    """The store lost the routes (its data was lost); senders should retry shortly."""


class SessionStore(Protocol):
    """Live sockets of the fleet: their records and the sessions of each user."""

    async def session_add(
        self, *, sid: str, user_id: int, instance_id: str, channel: str
    ) -> bool:
        """Record a session; True when its user just came online."""

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
        """session_add, then route_add of `room` to `channel` if `route`, then
        room_join of `room`: what every new socket needs, in one round trip.
        True when the user just came online."""

    async def session_remove(self, *, sid: str) -> RemovedSession | None:
        """Forget a session, its room memberships and its usage marks; None if it
        was not known."""

    async def session_get(self, *, sid: str) -> SessionRecord | None:
        """The record of one session."""

    async def session_touch(self, *, sid: str) -> None:
        """Record that a known session was seen now (heartbeat)."""

    async def session_list(self) -> list[SessionRecord]:
        """Every session on every instance, oldest first."""

    async def user_sessions(self, *, user_id: int) -> set[str]:
        """The live sessions of a user, on every instance."""


class RoomStore(Protocol):
    """Which sessions are in which room, on every instance."""

    async def room_join(self, *, room: str, sid: str) -> bool:
        """Put a known session in a room; True if it was not there yet."""

    async def room_leave(self, *, room: str, sid: str) -> bool:
        """Take a session out of a room; True if it was there."""

    async def room_sessions(self, *, room: str) -> set[str]:
        """The sessions in a room, on every instance."""

    async def room_user_ids(self, *, room: str) -> set[int]:
        """The users with at least one session in a room."""

    async def session_rooms(self, *, sid: str) -> set[str]:
        """The rooms a session is in."""

    async def room_counts(self) -> dict[str, int]:
        """Every room with members, and how many sessions it has."""

    async def room_prune(self, *, room: str, dry_run: bool = False) -> list[str]:
        """Remove (or only list) members of a room that no longer hold it: sessions
        with no record, or whose record does not list the room."""


class RouteStore(Protocol):
    """Which instance channels each room's events go to."""

    async def route_add(self, *, room: str, channel: str, instance_id: str) -> None:
        """Send the room's events to this instance channel (it has members there)."""

    async def route_remove(self, *, room: str, channel: str, instance_id: str) -> None:
        """Stop sending the room's events to this instance channel."""

    async def routes_for(self, *, rooms: list[str]) -> dict[str, set[str]]:
        """The instance channels of each room (one round trip for all of them).
        Raises RoutesRebuilding while the store is known to have lost them."""


class HistoryStore(Protocol):
    """Per-room event history: positions (epoch, offset) and a bounded window."""

    async def history_publish(
        self, *, appends: list[tuple[str, str]], rooms: list[str]
    ) -> tuple[list[tuple[str, int]], dict[str, set[str]] | None]:
        """Append each (room, record) (a record is one line: JSON, no newline),
        giving it the room's next offset, then look
        up the routes of `rooms` (after the appends, in one round trip): the
        position of each append, in order, and the routes (None while the store
        rebuilds them after losing them: the appends are made all the same)."""

    async def history_read(
        self, *, room: str, epoch: str, offset: int, limit: int
    ) -> HistoryRead:
        """The records of `room` after (epoch, offset), if the window still holds
        them all (at most `limit`)."""

    async def history_top(self, *, rooms: list[str]) -> dict[str, tuple[str, int]]:
        """Each room's position now (a room with no history gets an epoch)."""


class PresenceStore(Protocol):
    """Who is online, and one coalesced broadcast per change."""

    async def online_user_ids(self) -> set[int]:
        """Users with at least one live session anywhere."""

    async def presence_claim(self, *, interval: float) -> bool:
        """True if online users changed since the last broadcast and this caller may
        broadcast now (at most once per `interval`, fleet-wide)."""


class InstanceStore(Protocol):
    """Instance liveness, and reaping the sessions of instances that died."""

    async def instance_refresh(
        self, *, instance_id: str, channel: str, ttl: float
    ) -> bool:
        """Renew an instance's liveness; False if it had lapsed (re-register then)."""

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove an instance and all its sessions now (graceful shutdown)."""

    async def reap_dead_instances(self) -> list[ReapedInstance]:
        """Remove the sessions of every instance whose liveness lapsed."""

    async def instance_list(self) -> dict[str, bool]:
        """Registered instances, and whether their liveness key is fresh."""


class TaskStore(Protocol):
    """Running distributed tasks and the instances that run them."""

    async def task_add(self, *, record: TaskRecord) -> None:
        """Record a running task."""

    async def task_remove(self, *, task_id: str) -> None:
        """Forget a finished task (no keys are left behind)."""

    async def task_get(self, *, task_id: str) -> TaskRecord | None:
        """One running task."""

    async def task_list(self) -> list[TaskRecord]:
        """Every running task, on every instance."""

    async def task_ids_for_item(self, *, item_id: str) -> set[str]:
        """Running tasks of an item (e.g. a chat)."""

    async def task_prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove (or only list) task keys left behind: records of instances that are
        not alive, and index entries without a record."""


class UsageStore(Protocol):
    """Which models sessions are using, with marks that lapse."""

    async def usage_mark(self, *, model: str, sid: str, ttl: float) -> bool:
        """Mark that a known session uses a model for the next `ttl` seconds; False if
        the session is unknown. Removing the session removes its marks."""

    async def usage_models(self) -> dict[str, set[str]]:
        """Models with a live (unexpired) mark, and the sessions using each."""

    async def usage_expire(self, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Delete expired marks (or only list them); returns (sid, model) pairs."""

    async def usage_claim(self, *, interval: float) -> list[str] | None:
        """The sorted models in use if they changed since the last broadcast and this
        caller may broadcast now (at most once per `interval`, fleet-wide)."""


class LockStore(Protocol):
    """Fleet-wide claims that expire: leader locks and throttles."""

    async def lock_acquire(self, *, name: str, owner: str, ttl: float) -> bool:
        """Take the lock if nobody holds it (SET NX with an expiry)."""

    async def lock_renew(self, *, name: str, owner: str, ttl: float) -> bool:
        """Extend the lock's expiry if `owner` still holds it."""

    async def lock_release(self, *, name: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it."""

    async def lock_owner(self, *, name: str) -> tuple[str | None, float]:
        """Who holds the lock and the seconds left before it expires."""

    async def throttle(self, *, key: str, seconds: float) -> bool:
        """True at most once per `seconds` per key, fleet-wide."""


class StateStore(
    SessionStore,
    RoomStore,
    RouteStore,
    HistoryStore,
    PresenceStore,
    InstanceStore,
    TaskStore,
    UsageStore,
    LockStore,
    Protocol,
):
    """Shared state of the real-time layer: every concern's protocol together."""

    async def close(self) -> None:
        """Release connections held for the current event loop."""


# The concerns a store is made of; each backend has one file per concern.
CONCERNS: tuple[type, ...] = tuple(c for c in StateStore.__bases__ if c is not Protocol)
