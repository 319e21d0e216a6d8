"""The hub's inbox: what other processes send this instance's layer channel, read
by one receive loop and dispatched by message type through the layer registry
(realtime.layer). The room and session messages are the hub's own and registered
here; other modules register theirs (realtime.calls, realtime.tasks)."""

import asyncio
import inspect
import logging
import time

from realtime import metrics, wire
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.history import live_frame
from realtime.layer import (
    RoomEmit,
    RoomMove,
    SessionClose,
    SessionEmit,
    UserClose,
    layer_handler,
    on_layer,
)
from realtime.loops import MAX_BACKOFF
from realtime.metrics import UNKNOWN_EVENT as UNKNOWN
from realtime.session import Session

log = logging.getLogger(__name__)

# A failed layer receive is retried after this, doubling up to MAX_BACKOFF.
RECEIVE_RETRY_FIRST = 0.1


class Inbox:
    """The receiving side of one instance (a part of the Hub)."""

    async def _receive_loop(self) -> None:
        backoff = RECEIVE_RETRY_FIRST
        while not self._stopping:
            try:
                message = await self.layer.receive(self.channel)
                backoff = RECEIVE_RETRY_FIRST
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
                self.spawn(self._tick_quietly())
                continue
            try:
                await self.dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failed to handle layer message %s", message.get("type"))

    async def dispatch(self, message: dict) -> None:
        """Apply one message sent to this instance: a batch item by item, the rest
        through the handler registered for its type."""
        kind = message.get("type")
        if kind == "batch":
            for item in message["items"]:
                if item.get("type") == "room.emit":  # the hot path: no coroutine
                    self.fan_out(item)
                else:
                    await self.dispatch(item)
            return
        handler = layer_handler(kind)
        if handler is None:
            log.warning("unknown layer message type %r", kind)
            return
        result = handler(self, message)
        if inspect.isawaitable(result):
            await result

    def fan_out(self, message: RoomEmit) -> None:
        """Push a room.emit frame to this instance's members of the room; one with a
        position goes through the room's order first (realtime/hub/ordering.py)."""
        if "offset" in message:
            self.in_order(message)
        else:
            self._deliver_ordered(message)

    def _deliver_ordered(self, message: RoomEmit) -> None:
        skip = message.get("skip")
        skip_user = message.get("skip_user")
        frame = message["frame"]
        frames = message.get("frames")
        room = message["room"]
        offset = message.get("offset")
        sent = 0
        for session in tuple(self.rooms.get(room, ())):
            if session.sid == skip or (
                skip_user is not None and session.user_id == skip_user
            ):
                continue
            chosen = frame if frames is None else frames.get(session.protocol, frame)
            if chosen is None:
                continue
            recovering = session.recovering
            if recovering and offset is not None and room in recovering:
                recovery = recovering[room]
                if recovery.live:
                    live_frame(session, recovery, message, chosen)
                else:  # its missed events are being read: this one waits
                    recovery.waiting.append((offset, chosen))
            else:
                session.push(chosen)
            sent += 1
        if sent:
            metrics.events_out(message.get("event", UNKNOWN)).inc(sent)
        emitted_at = message.get("t")
        if emitted_at is not None:
            metrics.EMIT_LATENCY.observe(max(time.time() - emitted_at, 0.0))

    async def close_session(self, session: Session, code: int, reason: str) -> None:
        """Close one local socket, telling it why first when there is a reason."""
        if reason:
            session.push(
                wire.dumps({"event": "disconnect", "data": {"reason": reason}})
            )
        await self.unregister(session)
        await session.close(code)


@on_layer("room.emit")
def room_emit(hub, message: RoomEmit) -> None:
    hub.fan_out(message)


@on_layer("session.emit")
def session_emit(hub, message: SessionEmit) -> None:
    session = hub.sessions.get(message["sid"])
    if session is not None:
        frames = message.get("frames")
        frame = message["frame"]
        if frames is not None:
            frame = frames.get(session.protocol, frame)
        if frame is not None:
            session.push(frame)
            metrics.events_out(message.get("event", UNKNOWN)).inc()


@on_layer("room.enter")
async def room_enter(hub, message: RoomMove) -> None:
    for session in hub.local_sessions_of(message["user_ids"]):
        await hub.join(session, message["room"])


@on_layer("room.leave")
async def room_leave(hub, message: RoomMove) -> None:
    for session in hub.local_sessions_of(message["user_ids"]):
        await hub.leave(session, message["room"])


@on_layer("user.close")
async def user_close(hub, message: UserClose) -> None:
    for session in hub.local_sessions_of(message["user_ids"]):
        await hub.close_session(
            session,
            message.get("code", CLOSE_UNAUTHORIZED),
            message.get("reason") or "",
        )


@on_layer("session.close")
async def session_close(hub, message: SessionClose) -> None:
    session = hub.sessions.get(message["sid"])
    if session is not None:
        await hub.close_session(
            session,
            message.get("code", CLOSE_UNAUTHORIZED),
            message.get("reason") or "",
        )
