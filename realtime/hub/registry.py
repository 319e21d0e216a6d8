"""The hub's registry: this instance's sessions, their users and rooms, and the
routes in shared state that make other instances send room messages here.

A room is routed to this instance (a route entry: room -> this instance's channel)
while at least one local session is in it, so a room emit travels once per instance
with members and is fanned out here from `rooms`.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from realtime import metrics
from realtime.history import Recovery, keeps_history, recovery_read, replay
from realtime.rooms import user_room
from realtime.session import Session

log = logging.getLogger(__name__)


class Registry:
    """Sessions, users and rooms of one instance (a part of the Hub)."""

    instance_id: str
    channel: str

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.users: dict[int, set[Session]] = {}
        self.rooms: dict[str, set[Session]] = {}
        self._routed: set[str] = set()  # rooms whose route includes our channel
        self._room_locks: dict[str, asyncio.Lock] = {}

    def routed_rooms(self) -> set[str]:
        """Rooms routed to this instance in shared state right now."""
        return set(self._routed)

    async def register(self, session: Session) -> None:
        """Make an authenticated session known to the fleet; put it in its user room."""
        self.sessions[session.sid] = session
        self.users.setdefault(session.user_id, set()).add(session)
        metrics.CONNECTIONS.inc()
        metrics.CONNECTS.inc()
        # The same as session_add + join(user room), in one round trip to Redis:
        # connects per second are bound by this step.
        room = user_room(session.user_id)
        self._recovery_begin(session, room)
        session.rooms.add(room)
        self.rooms.setdefault(room, set()).add(session)
        async with self._room_lock(room):
            route = room not in self._routed
            await self.state.session_register(
                sid=session.sid,
                user_id=session.user_id,
                instance_id=self.instance_id,
                channel=self.channel,
                room=room,
                route=route,
            )
            if route:
                self._routed.add(room)
                recovery = session.recovering.get(room)
                if recovery is not None:
                    # Its recovery read (next, after the route) gives the position:
                    # one round trip fewer on a reconnect (see recover()).
                    recovery.orders_room = True
                else:
                    await self._order_from_store([room])

    async def unregister(self, session: Session) -> None:
        """Forget a session everywhere: local rooms, groups and shared state."""
        if self.sessions.pop(session.sid, None) is None:
            return
        metrics.CONNECTIONS.dec()
        metrics.DISCONNECTS.inc()
        user_sessions = self.users.get(session.user_id)
        if user_sessions is not None:
            user_sessions.discard(session)
            if not user_sessions:
                del self.users[session.user_id]
        rooms = list(session.rooms)
        session.rooms.clear()
        for room in rooms:
            self._local_remove(session, room)
        await self.state.session_remove(sid=session.sid)
        for room in rooms:
            await self._sync_group(room)

    async def join(self, session: Session, room: str) -> bool:
        """Put a session in a room; True if it was not there yet."""
        if room in session.rooms or session.sid not in self.sessions:
            return False
        recovery = self._recovery_begin(session, room)
        session.rooms.add(room)
        self.rooms.setdefault(room, set()).add(session)
        await self._sync_group(room)
        await self.state.room_join(room=room, sid=session.sid)
        if recovery is not None:
            # Asked for in the connect frame: the outcome, the missed events, then
            # the live ones (docs/protocol.md §8).
            await self.recover(session, [recovery])
            session.emit("recovery", {"room": room, **recovery.result()})
            replay(session, recovery)
        elif keeps_history(room):
            epoch, offset = await self.position_of(room)
            session.emit("position", {"room": room, "epoch": epoch, "offset": offset})
        return True

    def _recovery_begin(self, session: Session, room: str) -> Recovery | None:
        # Before the session is in the room: its live events wait from the start.
        asked = session.recover_wanted.pop(room, None)
        if asked is None:
            return None
        recovery = session.recovering[room] = Recovery(room=room, asked=asked)
        return recovery

    async def recover(self, session: Session, recoveries: list[Recovery]) -> None:
        """Read what the session missed in each room it is recovering (it is in them
        already, so nothing falls between the read and the live events)."""
        for recovery in recoveries:
            try:
                await recovery_read(recovery, self.state, session)
            except Exception as exc:  # Redis away: say not recovered, go live
                log.warning("recovery read of %s failed: %s", recovery.room, exc)
                recovery.read = None
            if recovery.orders_room:
                # The route was new, so no other socket here is in the room: the
                # read, made after the route was added, starts the room's order.
                recovery.orders_room = False
                read = recovery.read
                if read is not None:
                    self.order_start(recovery.room, read.epoch, read.offset)
                else:
                    await self._order_from_store([recovery.room])
            outcome = recovery.read.status if recovery.read else "disabled"
            metrics.RECOVERIES.labels(outcome).inc()

    async def position_of(self, room: str) -> tuple[str, int]:
        """The room's position as this instance hands its events out."""
        position = self.room_position(room)
        if position is None:
            position = (await self.state.history_top(rooms=[room]))[room]
        return position

    async def _order_from_store(self, rooms: list[str]) -> None:
        # Routes were just added: events after the rooms' positions now all come here.
        rooms = [room for room in rooms if keeps_history(room)]
        if rooms:
            for room, (epoch, offset) in (
                await self.state.history_top(rooms=rooms)
            ).items():
                self.order_start(room, epoch, offset)

    async def leave(self, session: Session, room: str) -> bool:
        """Take a session out of a room; True if it was there."""
        if room not in session.rooms:
            return False
        session.rooms.discard(room)
        self._local_remove(session, room)
        await self.state.room_leave(room=room, sid=session.sid)
        await self._sync_group(room)
        return True

    def local_sessions_of(self, user_ids: Iterable[int]) -> list[Session]:
        """This instance's sessions of the given users."""
        found: list[Session] = []
        for uid in user_ids:
            found.extend(self.users.get(uid, ()))
        return found

    def _local_remove(self, session: Session, room: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(session)
            if not members:
                del self.rooms[room]

    @contextlib.asynccontextmanager
    async def _room_lock(self, room: str):
        # One lock per room while anyone holds or waits for it; forgotten after.
        lock = self._room_locks.setdefault(room, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._room_locks.get(room) is lock:
                del self._room_locks[room]

    async def _sync_group(self, room: str) -> None:
        # Whatever order joins and leaves interleave in, the last sync under the room's
        # lock makes the route match local membership.
        async with self._room_lock(room):
            wanted = room in self.rooms
            route = {
                "room": room,
                "channel": self.channel,
                "instance_id": self.instance_id,
            }
            if wanted and room not in self._routed:
                await self.state.route_add(**route)
                self._routed.add(room)
                await self._order_from_store([room])
            elif not wanted and room in self._routed:
                await self.state.route_remove(**route)
                self._routed.discard(room)
                self.order_stop(room)
