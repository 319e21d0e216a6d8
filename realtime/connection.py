"""One client connection, whatever carries its frames: the frame loop of
docs/protocol.md (size, parse, rate, authenticate, dispatch, answer).

The WebSocket consumer (realtime.consumer) and the HTTP transport
(realtime.http_transport) each make a Connection, feed it text frames in order and
tell it when the client went away; the session (realtime.session) holds the socket's
state and the hub (realtime.hub) its rooms.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from realtime import auth, dialects, events, history, metrics, tokens, wire
from realtime.errors import (
    BAD_REQUEST,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHORIZED,
    INTERNAL,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNKNOWN_EVENT,
    EventError,
)
from realtime.history import RecoverPayload
from realtime.hub import Hub, get_hub
from realtime.session import Session

log = logging.getLogger(__name__)


class ConnectPayload(events.Payload):
    """Data of the first frame: the token, the dialect the socket speaks, and the
    positions to recover (checked on its own: a bad one is a bad_request)."""

    token: str
    protocol: str = dialects.REALTIME
    recover: Any = None


RECOVER_SHAPE = (
    'connect recover must be {"sid"?: string, "rooms": '
    '{room: {"epoch": string, "offset": integer}}}'
)


class Connection:
    """A client's frames in, the session's frames out; one per socket."""

    def __init__(
        self,
        *,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        send_many: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.session = Session(send=send, close=close, send_many=send_many)
        self.hub: Hub | None = None
        self._auth_timer: asyncio.Task | None = None

    async def prepare(self) -> None:
        """Start this process's hub if it has not (before the transport accepts)."""
        # Started here rather than at login, so an instance keeps its liveness and
        # reaps dead peers as soon as it serves any socket.
        self.hub = await get_hub()

    def start(self) -> None:
        """Once accepted: start the writer and wait AUTH_TIMEOUT for connect."""
        self.session.start()
        self._auth_timer = asyncio.get_running_loop().create_task(
            self._expire_unauthenticated()
        )

    async def _expire_unauthenticated(self) -> None:
        await asyncio.sleep(settings.AUTH_TIMEOUT)
        if not self.session.authenticated:
            self.session.push(
                wire.error_event_frame(
                    EventError(UNAUTHORIZED, "authentication timeout")
                )
            )
            await self.session.close(CLOSE_UNAUTHORIZED)

    async def disconnect(self) -> None:
        """Run app hooks, then forget the session everywhere."""
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        session = self.session
        session.shutdown()
        if session.authenticated:
            for hook in events.disconnect_hooks():
                try:
                    await hook(session)
                except Exception:
                    log.exception(
                        "disconnect hook %s failed for %s", hook.__name__, session.sid
                    )
            await self.hub.unregister(session)

    def refuse_binary(self) -> None:
        """Answer a binary frame (only text frames carry the protocol)."""
        if not self.session.closed:
            self._reply_error(
                None, EventError(BAD_REQUEST, "binary frames are not accepted")
            )

    async def receive(self, text_data: str) -> None:
        """Handle one client text frame."""
        session = self.session
        if session.closed:
            return
        if _too_big(text_data):
            await session.close(CLOSE_TOO_BIG)
            return
        try:
            frame = wire.parse_frame(text_data)
        except wire.FrameError as exc:
            self._reply_error(exc.ack, exc)
            return
        if isinstance(frame, wire.Reply):
            if not session.authenticated or not session.resolve_reply(frame):
                self._reply_error(
                    None, EventError(BAD_REQUEST, "no call is waiting for that reply")
                )
            return
        if not session.allow_frame():
            self._reply_error(
                frame.ack, EventError(RATE_LIMITED, "too many frames"), frame.event
            )
            return
        if not session.authenticated:
            metrics.EVENTS_IN.labels("connect").inc()
            await self._authenticate(frame)
            return
        spec = events.event_get(frame.event)
        metrics.EVENTS_IN.labels(
            frame.event if spec is not None else metrics.UNKNOWN_EVENT
        ).inc()
        if spec is None:
            self._reply_error(
                frame.ack,
                EventError(UNKNOWN_EVENT, f"unknown event {frame.event!r}"),
                frame.event,
            )
            return
        try:
            payload = spec.validate(frame.data, session.protocol)
            result = await spec.handler(session, payload)
        except EventError as exc:
            self._reply_error(frame.ack, exc, frame.event)
            return
        except Exception:
            log.exception(
                "handler of %s failed (session %s, user %s)",
                frame.event,
                session.sid,
                session.user_id,
            )
            self._reply_error(
                frame.ack,
                EventError(INTERNAL, "the server failed to handle the event"),
                frame.event,
            )
            return
        if frame.ack is not None:
            session.push(wire.ack_frame(frame.ack, result))

    async def _authenticate(self, frame: wire.Emit) -> None:
        session = self.session
        if frame.event != "connect":
            self._reply_error(
                frame.ack,
                EventError(UNAUTHORIZED, "the first frame must be connect"),
                frame.event,
            )
            await session.close(CLOSE_UNAUTHORIZED)
            return
        try:
            try:
                connect = ConnectPayload.model_validate(frame.data)
            except ValidationError:
                raise EventError(
                    UNAUTHORIZED,
                    'connect data must be {"token": string, "protocol"?: string}',
                ) from None
            if connect.protocol not in dialects.PROTOCOLS:
                raise EventError(
                    BAD_REQUEST, 'connect protocol must be "realtime" or "openwebui"'
                )
            recover = None
            if connect.recover is not None:
                try:
                    recover = RecoverPayload.model_validate(connect.recover)
                except ValidationError:
                    raise EventError(BAD_REQUEST, RECOVER_SHAPE) from None
            user, exp = await auth.access_for_token(connect.token)
        except EventError as exc:
            self._reply_error(frame.ack, exc, frame.event)
            await session.close(CLOSE_UNAUTHORIZED)
            return
        self._auth_timer.cancel()
        session.user = user
        session.user_id = user.id
        session.protocol = connect.protocol
        if recover is not None:
            session.recover_wanted = recover.positions()
            session.previous_sids = (recover.sid,) if recover.sid else ()
        await self.hub.register(session)
        tokens.token_expiry_watch(session, exp=exp)
        recoveries = list(session.recovering.values())
        await self.hub.recover(session, recoveries)
        hello = {
            "sid": session.sid,
            "user": auth.user_summary(user),
            "protocol": session.protocol,
            "exp": exp,
            "positions": await self._positions(),
        }
        if recover is not None:
            results = {r.room: r.result() for r in recoveries}
            hello["recovered"] = all(r["recovered"] for r in results.values())
            hello["recovery"] = results
        if frame.ack is not None:
            session.push(wire.ack_frame(frame.ack, hello))
        # The missed events after the ack, before any live one of their rooms.
        for recovery in recoveries:
            history.replay(session, recovery)

    async def _positions(self) -> dict:
        # Where the socket is in each history room it is in once the ack is read
        # (the events after it follow): a client that drops before any event of
        # the room can still recover from here. A recovered room is where the
        # client said it was, since its missed events come next.
        positions = {}
        for room in sorted(self.session.rooms):
            recovery = self.session.recovering.get(room)
            if recovery is not None and recovery.read is not None:
                read = recovery.read
                asked = recovery.asked
                epoch, offset = (
                    (asked.epoch, asked.offset)
                    if read.status == "ok"
                    else (read.epoch, read.offset)
                )
            elif history.keeps_history(room):
                epoch, offset = await self.hub.position_of(room)
            else:
                continue
            positions[room] = {"epoch": epoch, "offset": offset}
        return positions

    def _reply_error(
        self, ack: int | None, error: EventError, event: str | None = None
    ) -> None:
        metrics.ERRORS.labels(error.code).inc()
        if ack is not None:
            self.session.push(wire.ack_error_frame(ack, error))
        else:
            self.session.push(wire.error_event_frame(error, event))


def _too_big(text: str) -> bool:
    limit = settings.MAX_FRAME_BYTES
    # A str of n characters encodes to between n and 4n UTF-8 bytes: encode only when
    # the answer is not already known.
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode()) > limit
