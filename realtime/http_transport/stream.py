"""The downstream of an HTTP session: one long POST response that carries every frame
for the session as a Server-Sent Event, and the session's inbound frames, handled in
the order of their POSTs.

The session lives exactly as long as the response: the client aborting it is a
WebSocket closing, and a server close ends it with a `close` event carrying the code
a WebSocket would have closed with.
"""

import asyncio
import hmac
import logging
import secrets
import time
from collections import deque

from django.conf import settings

from realtime import wire
from realtime.connection import Connection
from realtime.http_transport import routes
from realtime.http_transport.shutdown import CLOSE_SERVICE_RESTART, shutdown_watch
from realtime.loops import per_loop

log = logging.getLogger(__name__)

# Frames as Server-Sent Events: `data: FRAME` and a blank line (a frame, being JSON,
# never holds a raw newline); an empty string in the session's queue is a keep-alive,
# written as an SSE comment.
KEEPALIVE = ""
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx buffers proxied responses unless told not to, which would hold frames.
    (b"x-accel-buffering", b"no"),
]

# The last write of a response (the close event) gets this long.
END_WRITE_SECONDS = 1.0

# Answers of Stream.take (HTTP statuses of the POST).
ACCEPTED, FORBIDDEN, OUT_OF_ORDER, FULL = 204, 403, 409, 429


def _sse(frames: list[str]) -> bytes:
    return "".join(f"data: {f}\n\n" if f else ":\n\n" for f in frames).encode()


class Stream:
    """One HTTP session: its Connection, the response it writes to, its inbox."""

    def __init__(self, send) -> None:
        self._asgi_send = send
        self.connection = Connection(
            send=self._send_one, close=self._close, send_many=self._send_many
        )
        self.session = self.connection.session
        self.secret = secrets.token_urlsafe(18)
        self.seq = 0  # the last POST taken
        # Watches for the client going away; cancelled when the session closes.
        self._watcher: asyncio.Task | None = None
        self.last_write = time.monotonic()
        self._inbox: deque[str] = deque()
        self._reader: asyncio.Task | None = None
        self._finished = False

    async def _write(self, body: bytes, *, more: bool = True) -> None:
        if self._finished:
            return
        self._finished = not more
        self.last_write = time.monotonic()
        await self._asgi_send(
            {"type": "http.response.body", "body": body, "more_body": more}
        )

    async def _send_one(self, frame: str) -> None:
        await self._write(_sse([frame]))

    async def _send_many(self, frames: list[str]) -> None:
        await self._write(_sse(frames))

    async def _close(self, code: int) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        close = wire.dumps({"code": code})
        await self._end(f"event: close\ndata: {close}\n\n".encode())

    async def _end(self, body: bytes) -> None:
        # A reader that stopped reading (the slow consumer's case) would hold the
        # last write for ever: past END_WRITE_SECONDS the response is left unfinished
        # and the ASGI server drops the connection, as a WebSocket's would be.
        try:
            await asyncio.wait_for(self._write(body, more=False), END_WRITE_SECONDS)
        except (TimeoutError, OSError, RuntimeError):
            pass

    async def run(self, frames: list[str], receive) -> None:
        """Open the stream, take the request's frames, and serve until the client
        goes or the session closes."""
        connection = self.connection
        await connection.prepare()
        await self._asgi_send(
            {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
        )
        key = routes.route_key(
            sid=self.session.sid, secret=self.secret, channel=connection.hub.channel
        )
        opened = wire.dumps(
            {
                "sid": self.session.sid,
                "key": key,
                "keepalive": settings.HTTP_KEEPALIVE,
                "post_max_bytes": settings.HTTP_POST_MAX_BYTES,
                "post_max_frames": settings.HTTP_POST_MAX_FRAMES,
            }
        )
        await self._write(f"event: open\ndata: {opened}\n\n".encode())
        _streams()[self.session.sid] = self
        _keepalive_start()
        shutdown_watch(_close_all)
        watcher = self._watcher = asyncio.get_running_loop().create_task(
            _client_gone(receive)
        )
        try:
            connection.start()
            self._enqueue(frames)
            # Until the client goes or the session closes (which cancels it); wait()
            # returns either way without raising.
            await asyncio.wait({watcher})
        finally:
            watcher.cancel()
            _streams().pop(self.session.sid, None)
            if self._reader is not None:
                self._reader.cancel()
            await connection.disconnect()
            if not self._finished:  # the client went first: end the response
                await self._end(b"")

    def take(self, secret: str, seq: int, frames: list[str]) -> int:
        """A POST's frames, if its secret is the session's and its seq the next;
        a seq already taken is a retry and is answered as accepted."""
        if not hmac.compare_digest(secret, self.secret):
            return FORBIDDEN
        if seq <= self.seq:
            return ACCEPTED
        if seq != self.seq + 1:
            return OUT_OF_ORDER
        if len(self._inbox) + len(frames) > settings.HTTP_INBOUND_MAX:
            return FULL
        self.seq = seq
        self._enqueue(frames)
        return ACCEPTED

    def _enqueue(self, frames: list[str]) -> None:
        if not frames or self.session.closed:
            return
        self._inbox.extend(frames)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        # One frame at a time, as Channels hands a WebSocket consumer its frames.
        inbox, receive = self._inbox, self.connection.receive
        while inbox:
            try:
                await receive(inbox.popleft())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("frame of HTTP session %s failed", self.session.sid)


async def _client_gone(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# This loop's HTTP sessions by sid, for the POSTs that land here.
_streams = per_loop(dict)


def local_stream(sid: str) -> Stream | None:
    """The HTTP session `sid` if this process holds its stream."""
    return _streams().get(sid)


def _close_all() -> None:
    # The server is stopping: every stream ends as uvicorn ends a WebSocket.
    for stream in list(_streams().values()):
        asyncio.ensure_future(stream.session.close(CLOSE_SERVICE_RESTART))


class _Keepalive:
    task: asyncio.Task | None = None


_keepalive = per_loop(_Keepalive)


def _keepalive_start() -> None:
    slot = _keepalive()
    if slot.task is None or slot.task.done():
        slot.task = asyncio.get_running_loop().create_task(_keepalive_loop())


async def _keepalive_loop() -> None:
    # One sweep for every stream of the process rather than a timer each: a stream
    # silent for HTTP_KEEPALIVE gets a comment within a third of that again.
    while True:
        interval = settings.HTTP_KEEPALIVE
        await asyncio.sleep(interval / 3)
        quiet_since = time.monotonic() - interval
        for stream in list(_streams().values()):
            if stream.last_write <= quiet_since:
                stream.last_write = time.monotonic()
                stream.session.push(KEEPALIVE)
