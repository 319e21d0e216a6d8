"""The HTTP transport's test client (docs/protocol.md §10), a Transport of
testing.clients like RealSocket: the stream is one long POST read as Server-Sent
Events, and each send is a POST of one frame on a second, kept-alive connection.

    client = await SocketClient.open(RealHttp(server.http), user, join=True)

Raw h11 over asyncio streams, so a benchmark can hold a thousand of them cheaply.
"""

import asyncio
from urllib.parse import urlsplit

import h11

from realtime.wire import loads
from testing.clients import SocketClosed

NDJSON = "application/x-ndjson"


class HttpConnection:
    """One HTTP/1.1 connection: requests one after the other, bodies streamed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None
        self.h11 = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, target: str, headers: dict, body: bytes = b""
    ) -> h11.Response:
        """Send a request; its response's head (read the body with body/chunks)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port
            )
        elif self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        fields = [("Host", f"{self.host}:{self.port}")]
        fields += [(k, v) for k, v in headers.items()]
        fields.append(("Content-Length", str(len(body))))
        self.writer.write(
            self.h11.send(h11.Request(method=method, target=target, headers=fields))
        )
        if body:
            self.writer.write(self.h11.send(h11.Data(data=body)))
        self.writer.write(self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                return event

    async def next_event(self):
        """The next h11 event of the response, reading as needed."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(65536)
            self.h11.receive_data(data)  # b"" at EOF: h11 ends or raises

    async def chunks(self):
        """The response body, piece by piece as it arrives."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return

    async def body(self) -> bytes:
        """The whole response body."""
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        """Drop the connection."""
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None


def header_of(response: h11.Response, name: bytes) -> str | None:
    """A response header's value."""
    for key, value in response.headers:
        if key == name:
            return value.decode("latin1")
    return None


class RealHttp:
    """The HTTP transport to a server process (or a proxy in front of several):
    `url` is its base, e.g. http://127.0.0.1:8000."""

    timeout = 5.0

    def __init__(
        self, url: str, *, headers: dict | None = None, post_to: list[str] = ()
    ) -> None:
        self.host, self.port = _address(url)
        self.headers = headers or {}  # sent with every request (e.g. Origin)
        self.stream = HttpConnection(self.host, self.port)
        # POSTs go to `url`, or in turn to each of `post_to` (other instances).
        self.posters = [HttpConnection(*_address(u)) for u in post_to or [url]]
        self.posts = 0
        self.sid = self.key = None
        self.opened: dict = {}  # the `open` event's data
        self.seq = 0
        self.status: int | None = None  # of the open request
        self._frames: asyncio.Queue = asyncio.Queue()
        # One POST at a time, as the protocol asks: concurrent sends wait their turn,
        # so seqs arrive in order on one connection at a time.
        self._posting = asyncio.Lock()
        self._reader: asyncio.Task | None = None

    async def open(self, body: bytes = b"") -> bool:
        """Open the stream (with frames already in `body`, one per line)."""
        headers = {**self.headers}
        if body:
            headers["Content-Type"] = NDJSON
        response = await self.stream.request("POST", "/ws/http/", headers, body)
        self.status = response.status_code
        if self.status != 200:
            self.error = loads(await self.stream.body())
            return False
        self._reader = asyncio.get_running_loop().create_task(self._read())
        first = await asyncio.wait_for(self._frames.get(), self.timeout)
        assert first[0] == "open", first
        self.opened = loads(first[1])
        self.sid, self.key = self.opened["sid"], self.opened["key"]
        return True

    async def _read(self) -> None:
        buffer = b""
        try:
            async for chunk in self.stream.chunks():
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self._frames.put_nowait(_event(block.decode()))
        except Exception:
            pass
        self._frames.put_nowait(("end", None))

    async def post(self, frames: list[str], *, seq: int | None = None, **extra):
        """POST frames to the session; (status, JSON body or None). `extra` headers
        replace the usual ones (key, seq, type)."""
        async with self._posting:
            return await self._post(frames, seq, extra)

    async def _post(self, frames: list[str], seq: int | None, extra: dict):
        if seq is None:
            self.seq += 1
            seq = self.seq
        headers = {
            **self.headers,
            "Content-Type": NDJSON,
            "X-Realtime-Key": self.key,
            "X-Realtime-Seq": str(seq),
            **extra,
        }
        body = "".join(f"{frame}\n" for frame in frames).encode()
        poster = self.posters[self.posts % len(self.posters)]
        self.posts += 1
        response = await poster.request("POST", f"/ws/http/{self.sid}/", headers, body)
        content = await poster.body()
        return response.status_code, loads(content) if content else None

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            raise TypeError("the HTTP transport carries text frames only")
        status, body = await self.post([data])
        if status != 204:
            raise AssertionError(f"POST answered {status}: {body}")

    async def receive(self, timeout: float | None) -> str:
        while True:
            kind, data = await asyncio.wait_for(self._frames.get(), timeout)
            if kind == "data":
                return data
            if kind == "close":
                self._frames.put_nowait((kind, data))  # closed stays closed
                raise SocketClosed(loads(data)["code"])
            if kind == "end":
                self._frames.put_nowait((kind, data))
                raise SocketClosed(None)
            # keep-alive comments are skipped

    async def nothing(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return True
            try:
                item = await asyncio.wait_for(self._frames.get(), left)
            except TimeoutError:
                return True
            if item[0] != "comment":
                # Put it back in front: a frame is not consumed.
                rest = [item]
                while not self._frames.empty():
                    rest.append(self._frames.get_nowait())
                for it in rest:
                    self._frames.put_nowait(it)
                return False

    def stop_reading(self) -> None:
        """Read no more of the stream (the connection stays open), as a reader that
        cannot keep up: the server's writes back up behind TCP's buffers."""
        if self._reader is not None:
            self._reader.cancel()

    async def close(self) -> None:
        self.stream.close()
        for poster in self.posters:
            poster.close()
        if self._reader is not None:
            self._reader.cancel()
            # A cancelled reader adds no end: a receive after close must still
            # raise SocketClosed (as RealSocket's does), not wait forever.
            self._frames.put_nowait(("end", None))

    async def abort(self) -> None:
        await self.close()


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or 80


def _event(block: str) -> tuple[str, str | None]:
    """(kind, data) of one SSE block: "data", "open", "close" or "comment"."""
    kind, data = "data", None
    for line in block.split("\n"):
        if line.startswith(":"):
            return "comment", None
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
    return kind, data
