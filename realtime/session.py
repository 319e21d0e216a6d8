"""One socket's state: identity, rooms, outbound frames and pending calls."""

import asyncio
import itertools
import logging
import secrets
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings

from realtime import dialects, metrics, wire
from realtime.errors import (
    CLOSE_SLOW_CONSUMER,
    DISCONNECTED,
    TIMEOUT,
    CallError,
    EventError,
)

log = logging.getLogger(__name__)

ReplyCallback = Callable[[Any, dict | None], None]
T = TypeVar("T")

# A closing socket gets this long to send what was queued before the close frame.
CLOSE_DRAIN_SECONDS = 1.0


class Session:
    """A connected socket. Handlers get one; only the hub changes its rooms."""

    def __init__(
        self,
        *,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        send_many: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.sid = secrets.token_urlsafe(16)
        self.user = None  # set once authenticated
        self.user_id: int | None = None
        # The dialect it speaks (realtime.dialects), set by its connect frame.
        self.protocol = dialects.REALTIME
        self.rooms: set[str] = set()
        # Resumable delivery (realtime.history): rooms whose missed events are being
        # read (their live frames wait in the Recovery), positions the client
        # presented for rooms it has not entered yet, and the sids of its earlier
        # connections (an event that skipped one of those is not replayed).
        self.recovering: dict = {}
        self.recover_wanted: dict = {}
        self.previous_sids: tuple[str, ...] = ()
        self.connected_at = time.time()
        self.closed = False
        self._send = send
        # A transport that writes several frames at once for the cost of one (an
        # HTTP stream's chunk) takes everything queued in one call.
        self._send_many = send_many
        self._close = close
        self._queue: deque[str] = deque()
        # Read once: Django's settings object costs a Python call per attribute
        # read (LazyObject.__getattribute__), 10% of a fan-out in the profile.
        self._queue_max = settings.OUTBOUND_QUEUE_MAX
        self._close_code: int | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._calls: dict[int, ReplyCallback] = {}
        self._call_ids = itertools.count(1)
        # Token bucket for incoming frames.
        self._tokens = float(settings.FRAME_BURST)
        self._tokens_at = time.monotonic()

    @property
    def authenticated(self) -> bool:
        """True once the connect frame was accepted."""
        return self.user_id is not None

    def start(self) -> None:
        """Start the writer: the one task that sends this socket's frames, in order."""
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def push(self, frame: str) -> None:
        """Queue an encoded frame for this socket; never blocks the caller."""
        if self.closed:
            return
        if len(self._queue) >= self._queue_max:
            log.warning(
                "closing slow session %s: %d frames queued", self.sid, len(self._queue)
            )
            self._queue.clear()
            asyncio.get_running_loop().create_task(self.close(CLOSE_SLOW_CONSUMER))
            return
        self._queue.append(frame)
        self._wake.set()

    def emit(self, event: str, data: Any) -> None:
        """Send an event to this socket only."""
        self.push(wire.event_frame(event, data))
        metrics.events_out(event).inc()

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._send_many is not None:
                    while self._queue:
                        frames = list(self._queue)
                        self._queue.clear()
                        await self._send_many(frames)
                while self._queue:
                    await self._send(self._queue.popleft())
                if self._close_code is not None:
                    await self._close(self._close_code)
                    return
        except asyncio.CancelledError:
            pass
        except Exception:  # the transport went away; the disconnect path cleans up
            log.debug("writer of %s stopped", self.sid, exc_info=True)

    def allow_frame(self) -> bool:
        """Token bucket: False when the client sends faster than FRAME_RATE allows."""
        now = time.monotonic()
        self._tokens = min(
            float(settings.FRAME_BURST),
            self._tokens + (now - self._tokens_at) * settings.FRAME_RATE,
        )
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def send_call(
        self, event: str, data: Any, on_reply: ReplyCallback, *, expire: float = 0
    ) -> int:
        """Send a call frame; `on_reply(data, error)` runs once with the answer, or with
        a `disconnected` error if the socket closes first. After `expire` seconds the
        call is forgotten (the caller has given up) and a late reply is a stray one."""
        if self.closed:
            on_reply(None, {"code": DISCONNECTED, "server": True})
            return 0
        call_id = next(self._call_ids)
        self._calls[call_id] = on_reply
        if expire:
            loop = asyncio.get_running_loop()
            loop.call_later(expire, self._calls.pop, call_id, None)
        self.push(wire.call_frame(event, data, call_id))
        return call_id

    async def call(self, event: str, data: Any, *, timeout: float | None = None) -> Any:
        """Call this socket (same process) and wait for its reply."""
        future = asyncio.get_running_loop().create_future()

        def on_reply(result: Any, error: dict | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(result)
            elif error.get("server"):
                future.set_exception(EventError(DISCONNECTED, "session disconnected"))
            else:
                future.set_exception(
                    CallError(error.get("code"), error.get("message", ""))
                )

        call_id = self.send_call(event, data, on_reply)
        try:
            return await asyncio.wait_for(future, timeout or settings.CALL_TIMEOUT)
        except TimeoutError:
            raise EventError(TIMEOUT, f"no reply to {event} in time") from None
        finally:
            self._calls.pop(call_id, None)

    def resolve_reply(self, reply: wire.Reply) -> bool:
        """Hand a client's reply to the waiting call; False if no call waits for it."""
        on_reply = self._calls.pop(reply.call_id, None)
        if on_reply is None:
            return False
        if reply.error is not None:
            error = {
                "code": reply.error.get("code"),
                "message": str(reply.error.get("message", ""))[:500],
            }
            on_reply(None, error)
        else:
            on_reply(reply.data, None)
        return True

    async def close(self, code: int) -> None:
        """Close the socket after the frames already queued (e.g. the error explaining
        why); the consumer's disconnect path then cleans up."""
        if self.closed:
            return
        self.closed = True
        self._close_code = code
        if self._writer is None or self._writer.done():
            await self._close(code)
            return
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_DRAIN_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            await self._close(code)

    def shutdown(self) -> None:
        """Stop the writer and fail pending calls; called once on disconnect."""
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
        calls, self._calls = self._calls, {}
        for on_reply in calls.values():
            on_reply(None, {"code": DISCONNECTED, "server": True})


def per_session(factory: Callable[[], T]) -> Callable[["Session"], T]:
    """A function that returns a session's object for an app's own per-socket state
    (made by `factory` on first use, dropped with the session), so that the core's
    Session carries no app's fields."""
    made: weakref.WeakKeyDictionary[Session, T] = weakref.WeakKeyDictionary()

    def get(session: Session) -> T:
        found = made.get(session)
        if found is None:
            found = made[session] = factory()
        return found

    get.made = made  # for inspection (tests)
    return get
