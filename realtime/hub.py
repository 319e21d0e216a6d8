"""This process's side of the fleet: its sockets, its rooms and its one layer channel.

Every server process (instance) has one channel-layer channel. A room is a layer group
whose members are instance channels, not sockets: a room emit is serialized once,
travels once per instance that has members, and each instance fans the frame out to its
own sockets from `Hub.rooms`. The hub also keeps the instance's liveness key fresh,
reaps instances that died without cleanup, and broadcasts online-user changes.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import weakref
from collections.abc import Iterable

from channels.layers import get_channel_layer
from django.conf import settings

from realtime import metrics, wire
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.metrics import UNKNOWN_EVENT as UNKNOWN
from realtime.outbox import get_outbox
from realtime.rooms import PRESENCE_ROOM, user_room
from realtime.session import Session
from realtime.state import StateStore, get_state

log = logging.getLogger(__name__)

# Background loops back off up to this long while Redis is unreachable.
MAX_BACKOFF = 10.0
# Shutdown waits this long for the background loops to end.
STOP_GRACE_SECONDS = 2.0


class Hub:
    """The instance runtime; one per event loop (one per server process)."""

    def __init__(self) -> None:
        self.instance_id = (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.layer = get_channel_layer()
        self.state: StateStore = get_state()
        self.channel = ""
        self.sessions: dict[str, Session] = {}
        self.users: dict[int, set[Session]] = {}
        self.rooms: dict[str, set[Session]] = {}
        self._routed: set[str] = set()  # rooms whose route includes our channel
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self.pending_calls: dict[str, asyncio.Future] = {}  # calls made from here
        self._stopping = False
        self._background: set[asyncio.Task] = set()
        self.worker = None  # the in-process cleanup worker (WORKER_IN_PROCESS)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the instance channel and start the background loops."""
        self.channel = await self.layer.new_channel(prefix="rt-instance.")
        await self.state.instance_refresh(
            instance_id=self.instance_id,
            channel=self.channel,
            ttl=settings.INSTANCE_TTL,
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive_loop(), name="hub-receive"),
            loop.create_task(self._liveness_loop(), name="hub-liveness"),
            loop.create_task(self._presence_loop(), name="hub-presence"),
            loop.create_task(self._usage_loop(), name="hub-usage"),
        ]
        if settings.WORKER_IN_PROCESS:
            from realtime.worker import Worker  # the worker's jobs use the state

            self.worker = Worker(owner=self.instance_id)
            self._tasks.append(loop.create_task(self.worker.run(), name="worker"))
        log.info(
            "instance %s started on %s", self.instance_id, type(self.layer).__name__
        )

    async def stop(self) -> None:
        """Stop the loops and remove this instance's sessions from shared state."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # A cancelled channels-redis receive can stay in its blocking read for a while
        # (seen in tests): shutdown waits a bounded time, never for ever.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_GRACE_SECONDS)
            if stuck:
                log.warning("%d hub loops did not stop in time", len(stuck))
        self._tasks = []
        try:
            await self.state.instance_remove(instance_id=self.instance_id)
        except Exception:
            log.warning(
                "could not remove instance %s from shared state", self.instance_id
            )

    # --- sessions and rooms ----------------------------------------------------------

    async def register(self, session: Session) -> None:
        """Make an authenticated session known to the fleet; put it in its user room."""
        self.sessions[session.sid] = session
        self.users.setdefault(session.user_id, set()).add(session)
        metrics.CONNECTIONS.inc()
        metrics.CONNECTS.inc()
        # The same as session_add + join(user room), in one round trip to Redis:
        # connects per second are bound by this step.
        room = user_room(session.user_id)
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
        session.rooms.add(room)
        self.rooms.setdefault(room, set()).add(session)
        await self._sync_group(room)
        await self.state.room_join(room=room, sid=session.sid)
        return True

    async def leave(self, session: Session, room: str) -> bool:
        """Take a session out of a room; True if it was there."""
        if room not in session.rooms:
            return False
        session.rooms.discard(room)
        self._local_remove(session, room)
        await self.state.room_leave(room=room, sid=session.sid)
        await self._sync_group(room)
        return True

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
        # lock makes group membership match local membership.
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
            elif not wanted and room in self._routed:
                await self.state.route_remove(**route)
                self._routed.discard(room)

    def local_sessions_of(self, user_ids: Iterable[int]) -> list[Session]:
        """This instance's sessions of the given users."""
        found: list[Session] = []
        for uid in user_ids:
            found.extend(self.users.get(uid, ()))
        return found

    # --- messages from the layer -----------------------------------------------------

    async def _receive_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                message = await self.layer.receive(self.channel)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "layer receive failed (%s); retrying in %.1fs", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                # Redis may have come back empty: re-register now, not at the next
                # liveness tick, so senders find our routes again at once.
                self._spawn(self._tick_quietly())
                continue
            try:
                await self.dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failed to handle layer message %s", message.get("type"))

    async def dispatch(self, message: dict) -> None:
        """Apply one message sent to this instance (see realtime.emit for senders)."""
        kind = message.get("type")
        if kind == "batch":
            for item in message["items"]:
                if item.get("type") == "room.emit":  # the hot path: no coroutine
                    self.fan_out(item)
                else:
                    await self.dispatch(item)
        elif kind == "room.emit":
            self.fan_out(message)
        elif kind == "session.emit":
            session = self.sessions.get(message["sid"])
            if session is not None:
                session.push(message["frame"])
                metrics.events_out(message.get("event", UNKNOWN)).inc()
        elif kind == "room.enter":
            for session in self.local_sessions_of(message["user_ids"]):
                await self.join(session, message["room"])
        elif kind == "room.leave":
            for session in self.local_sessions_of(message["user_ids"]):
                await self.leave(session, message["room"])
        elif kind == "user.close":
            for session in self.local_sessions_of(message["user_ids"]):
                await self._close(session, message)
        elif kind == "session.close":
            session = self.sessions.get(message["sid"])
            if session is not None:
                await self._close(session, message)
        elif kind == "call.request":
            self._forward_call(message)
        elif kind == "call.reply":
            future = self.pending_calls.pop(message["ref"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "task.stop":
            from realtime.tasks import STOPPED_BY_USER, stop_local  # imports the hub

            # Not awaited here: a slow-to-stop task must not hold up this loop.
            # (An instance of an older release sends no reason.)
            reason = message.get("reason", STOPPED_BY_USER)
            task = asyncio.get_running_loop().create_task(
                stop_local(message["task_id"], reason=reason)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            log.warning("unknown layer message type %r", kind)

    def fan_out(self, message: dict) -> None:
        """Push a room.emit frame to this instance's members of the room."""
        skip = message.get("skip")
        frame = message["frame"]
        sent = 0
        for session in tuple(self.rooms.get(message["room"], ())):
            if session.sid != skip:
                session.push(frame)
                sent += 1
        if sent:
            metrics.events_out(message.get("event", UNKNOWN)).inc(sent)
        emitted_at = message.get("t")
        if emitted_at is not None:
            metrics.EMIT_LATENCY.observe(max(time.time() - emitted_at, 0.0))

    def _forward_call(self, message: dict) -> None:
        ref, reply_to = message["ref"], message["reply_to"]
        loop = asyncio.get_running_loop()

        def on_reply(data, error) -> None:
            reply = {"type": "call.reply", "ref": ref, "data": data, "error": error}
            loop.create_task(self.layer.send(reply_to, reply))

        session = self.sessions.get(message["sid"])
        if session is None:
            on_reply(None, {"code": "disconnected", "server": True})
        else:
            session.send_call(
                message["event"], message["data"], on_reply, expire=message["timeout"]
            )

    async def _close(self, session: Session, message: dict) -> None:
        code = message.get("code", CLOSE_UNAUTHORIZED)
        reason = message.get("reason")
        if reason:
            session.push(
                wire.dumps({"event": "disconnect", "data": {"reason": reason}})
            )
        await self.unregister(session)
        await session.close(code)

    # --- background loops ------------------------------------------------------------

    async def _liveness_loop(self) -> None:
        # Every TTL/3: a lapsed peer is reaped at most TTL/3 after its key expires,
        # i.e. within 4/3 TTL of its death (the promise is 2 TTL).
        while True:
            await asyncio.sleep(settings.INSTANCE_TTL / 3)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("liveness tick failed: %s", exc)

    async def tick(self) -> None:
        """Renew liveness (re-register if lapsed), reap dead peers, refresh groups."""
        alive = await self.state.instance_refresh(
            instance_id=self.instance_id,
            channel=self.channel,
            ttl=settings.INSTANCE_TTL,
        )
        if not alive:
            await self._reregister()
        for dead in await self.state.reap_dead_instances():
            log.warning(
                "reaped instance %s: %d sessions, %d users offline",
                dead.instance_id,
                dead.sessions,
                len(dead.went_offline),
            )

    async def _tick_quietly(self) -> None:
        try:
            await self.tick()
        except Exception as exc:
            log.debug("tick after a receive failure failed: %s", exc)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reregister(self) -> None:
        # Our liveness lapsed (a long pause, or Redis restarted and lost everything):
        # another instance may have reaped us, so write our sessions, routes and tasks
        # again.
        from realtime.tasks import local_records  # tasks imports the hub

        for record in local_records():
            await self.state.task_add(record=record)
        if not self.sessions:
            return
        log.warning(
            "instance %s re-registering %d sessions",
            self.instance_id,
            len(self.sessions),
        )
        for session in list(self.sessions.values()):
            await self.state.session_add(
                sid=session.sid,
                user_id=session.user_id,
                instance_id=self.instance_id,
                channel=self.channel,
            )
            for room in list(session.rooms):
                await self.state.room_join(room=room, sid=session.sid)
        for room in list(self._routed):
            await self.state.route_add(
                room=room, channel=self.channel, instance_id=self.instance_id
            )

    async def _presence_loop(self) -> None:
        interval = settings.PRESENCE_INTERVAL
        while True:
            await asyncio.sleep(interval / 2)
            try:
                await self.presence_tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence broadcast failed: %s", exc)

    async def presence_tick(self) -> bool:
        """Broadcast the online users if they changed and no instance did so lately."""
        if not await self.state.presence_claim(interval=settings.PRESENCE_INTERVAL):
            return False
        user_ids = sorted(await self.state.online_user_ids())
        frame = wire.event_frame("user-list", {"user_ids": user_ids})
        message = {
            "type": "room.emit",
            "room": PRESENCE_ROOM,
            "frame": frame,
            "event": "user-list",
        }
        await get_outbox().send(PRESENCE_ROOM, message)
        return True

    async def _usage_loop(self) -> None:
        interval = settings.USAGE_INTERVAL
        while True:
            await asyncio.sleep(interval / 2)
            try:
                await self.usage_tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("usage broadcast failed: %s", exc)

    async def usage_tick(self) -> bool:
        """Broadcast the models in use if they changed (marks added, lapsed or gone
        with their session) and no instance did so within USAGE_INTERVAL."""
        models = await self.state.usage_claim(interval=settings.USAGE_INTERVAL)
        if models is None:
            return False
        frame = wire.event_frame("usage", {"models": models})
        message = {
            "type": "room.emit",
            "room": PRESENCE_ROOM,
            "frame": frame,
            "event": "usage",
        }
        await get_outbox().send(PRESENCE_ROOM, message)
        return True


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future]" = (
    weakref.WeakKeyDictionary()
)


async def get_hub() -> Hub:
    """The hub of the running event loop, started on first use."""
    loop = asyncio.get_running_loop()
    future = _hubs.get(loop)
    if future is None:
        future = loop.create_future()
        _hubs[loop] = future
        hub = Hub()
        try:
            await hub.start()
        except BaseException as exc:
            del _hubs[loop]
            future.set_exception(exc)
            future.exception()  # mark retrieved; the caller gets the raise below
            raise
        future.set_result(hub)
    return await asyncio.shield(future)


def current_hub() -> Hub | None:
    """The hub of the running loop if it has started, without starting one."""
    future = _hubs.get(asyncio.get_running_loop())
    if future is None or not future.done() or future.exception() is not None:
        return None
    return future.result()


async def stop_hub() -> None:
    """Stop the running loop's hub (tests, and graceful shutdown)."""
    loop = asyncio.get_running_loop()
    future = _hubs.pop(loop, None)
    if future is not None and future.done() and future.exception() is None:
        await future.result().stop()
