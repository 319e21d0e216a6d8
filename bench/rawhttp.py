"""A minimal client of the HTTP transport's stream for the benchmarks (the
downstream only): the counterpart of bench/rawws.py, so that a thousand HTTP sessions
cost the measuring side about what a thousand WebSockets do.

It opens a session with `POST /ws/http/` (its body: the `connect` frame), then reads
the chunked response as Server-Sent Events: each `data: FRAME` goes to `on_frame` or
queues for `recv()`, keep-alive comments are skipped, and `event: close` keeps its
code. The full client, with POSTs and retries, is testing/http_transport.py; the
benchmarks send nothing after the connect (server code puts the sessions in rooms),
so this one does not POST.
"""

import asyncio
import json
from collections import deque
from collections.abc import Callable

OPEN_PREFIX = b"event: open\ndata: "
CLOSE_PREFIX = b"event: close\ndata: "
DATA_PREFIX = b"data: "


class RawHttp(asyncio.Protocol):
    """One HTTP session's stream; frames go to `on_frame` or queue for `recv()`."""

    def __init__(self) -> None:
        self.on_frame: Callable[[bytes], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: dict = {}  # the `open` event's data (sid, key, ...)
        self.close_code: int | None = None
        self._raw = bytearray()  # bytes off the socket, not yet de-chunked
        self._body = bytearray()  # the response body, not yet split into events
        self._head = False  # the response head was read
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._skip = 0  # bytes of a chunk's closing CRLF still to come
        self._ended = False  # the last chunk was read (what follows is ignored)
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future | None = None
        loop = asyncio.get_running_loop()
        self.started = loop.create_future()  # set by the `open` event
        self.closed = loop.create_future()

    @classmethod
    async def connect(cls, host: str, port: int, body: str) -> "RawHttp":
        """Open a session whose first frames are `body` (one per line); returns once
        its `open` event was read."""
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_connection(cls, host, port)
        data = body.encode()
        stream.transport.write(
            (
                f"POST /ws/http/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/x-ndjson\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        await stream.started
        return stream

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if not self.started.done():
            self.started.set_exception(ConnectionError("closed before the stream"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        raw = self._raw
        raw += data
        pos = 0
        if not self._head:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(raw[:end]).lower()
            if not head.startswith(b"http/1.1 200") or b"chunked" not in head:
                self.started.set_exception(
                    ConnectionError(bytes(raw[: raw.find(b"\r\n")]).decode())
                )
                self.transport.close()
                return
            self._head = True
            pos = end + 4
        # De-chunk what is here: `SIZE\r\nDATA\r\n`, one chunk per server write.
        body, size = self._body, len(raw)
        while pos < size:
            if self._skip:  # the CRLF after a chunk's data, maybe split over reads
                step = min(self._skip, size - pos)
                pos += step
                self._skip -= step
            elif self._chunk_left:
                take = min(self._chunk_left, size - pos)
                body += raw[pos : pos + take]
                pos += take
                self._chunk_left -= take
                if not self._chunk_left:
                    self._skip = 2
            else:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    break
                length = int(raw[pos:line_end], 16)
                if length == 0:  # the last chunk: the response ended
                    self._ended = True
                    self.transport.close()
                    pos = size
                    break
                self._chunk_left = length
                pos = line_end + 2
        del raw[:pos]
        self._events()

    def _events(self) -> None:
        body = self._body
        start = 0
        while True:
            end = body.find(b"\n\n", start)
            if end < 0:
                break
            block = bytes(body[start:end])
            start = end + 2
            if block.startswith(DATA_PREFIX):
                frame = block[len(DATA_PREFIX) :]
                if self.on_frame is not None:
                    self.on_frame(frame)
                else:
                    self._frames.append(frame)
                    if self._waiter is not None and not self._waiter.done():
                        self._waiter.set_result(None)
            elif block.startswith(OPEN_PREFIX):
                self.opened = json.loads(block[len(OPEN_PREFIX) :])
                self.started.set_result(None)
            elif block.startswith(CLOSE_PREFIX):
                self.close_code = json.loads(block[len(CLOSE_PREFIX) :])["code"]
            # else a keep-alive comment
        del body[:start]

    async def recv(self, timeout: float = 10.0) -> bytes:
        """The next frame not taken by `on_frame`."""
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._waiter, timeout)
        return self._frames.popleft()

    def close(self) -> None:
        """Close the TCP connection: for the server, the client aborted the fetch."""
        if self.transport is not None:
            self.transport.close()
