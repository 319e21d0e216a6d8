"""The one socket test client: SocketClient speaks the wire protocol
(docs/protocol.md) over either transport, Channels' in-process communicator
(InProcess) or a real WebSocket to a server process (RealSocket).

    client = await SocketClient.open(InProcess(application), user, join=True)
    client = await SocketClient.open(RealSocket(server.ws), user, join=True)
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import websockets
from channels.testing import WebsocketCommunicator

from realtime.wire import dumps, loads
from testing.factories import token_for


class SocketClosed(Exception):
    """The server closed the socket where a frame was expected."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"the socket closed (code {code})")
        self.code = code  # None: the connection dropped without a close frame


class Transport(Protocol):
    """One kind of connection: frames in and out, as text (or bytes)."""

    timeout: float  # how long a receive waits by default

    async def open(self) -> bool:
        """Open the socket; whether the server accepted it."""

    async def send(self, data: str | bytes) -> None:
        """Send one frame: text, or a binary frame for bytes."""

    async def receive(self, timeout: float | None) -> str:
        """The next frame's text; SocketClosed if the server closed instead,
        TimeoutError after `timeout` seconds (None: no limit)."""

    async def nothing(self, timeout: float) -> bool:
        """True if no frame arrives within `timeout` (a frame is not consumed)."""

    async def close(self) -> None:
        """Close the socket as a client does; idempotent."""

    async def abort(self) -> None:
        """Drop the connection without a closing handshake, as a killed client."""


class InProcess:
    """Channels' WebsocketCommunicator on an ASGI application, in the test's loop.

    A receive that times out cancels the application (Channels' communicator does):
    poll with nothing() first."""

    timeout = 2.0

    def __init__(self, application, *, headers=None, path: str = "/ws/") -> None:
        self.communicator = WebsocketCommunicator(
            application, path, headers=headers or []
        )
        self._open = False

    async def open(self) -> bool:
        connected, _ = await self.communicator.connect()
        self._open = True
        return connected

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.communicator.send_to(bytes_data=data)
        else:
            await self.communicator.send_to(text_data=data)

    async def receive(self, timeout: float | None) -> str:
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            raise SocketClosed(message.get("code"))
        assert message["type"] == "websocket.send", message
        return message["text"]

    async def nothing(self, timeout: float) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def close(self) -> None:
        # Also after the server closed: an ASGI server always tells the application.
        if self._open:
            self._open = False
            await self.communicator.disconnect()

    async def abort(self) -> None:
        if self._open:
            self._open = False
            await self.communicator.disconnect(code=1006)


class RealSocket:
    """A real WebSocket (the websockets library) to a URL: a server process."""

    timeout = 5.0

    def __init__(self, url: str, **options) -> None:
        self.url = url
        self.options = options  # for websockets.connect, e.g. max_size=None
        self.conn = None
        self._early: list[str] = []  # frames nothing() saw arrive

    async def open(self) -> bool:
        self.conn = await websockets.connect(self.url, **self.options)
        return True

    async def send(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def receive(self, timeout: float | None) -> str:
        if self._early:
            return self._early.pop(0)
        try:
            return await asyncio.wait_for(self.conn.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            raise SocketClosed(closed.rcvd.code if closed.rcvd else None) from None

    async def nothing(self, timeout: float) -> bool:
        if not self._early:
            try:
                self._early.append(await asyncio.wait_for(self.conn.recv(), timeout))
            except TimeoutError:
                return True
            except websockets.ConnectionClosed:
                pass  # the next receive raises it again
        return False

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def abort(self) -> None:
        self.conn.transport.abort()
        await self.conn.close()


class SocketClient:
    """A client of /ws/ over a transport: connect, emit with or without an ack,
    read frames and events, expect silence or a close."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.sid: str | None = None
        self.next_ack = 1

    @classmethod
    async def open(
        cls,
        transport: Transport,
        user=None,
        *,
        join: bool = False,
        protocol: str | None = None,
    ) -> "SocketClient":
        """Open the socket; with a user, connect as them (and `join`: user-join) in
        the dialect `protocol` (realtime.dialects; the server's default if None)."""
        client = cls(transport)
        assert await transport.open(), "the server refused the socket"
        if user is not None:
            await client.connect(user, join=join, protocol=protocol)
        return client

    async def connect(
        self,
        user,
        *,
        join: bool = False,
        protocol: str | None = None,
        recover: dict | None = None,
    ) -> dict:
        """Authenticate as `user` in the first frame (presenting `recover`, the
        positions to resume from); returns the ack's data."""
        data = {"token": token_for(user)}
        if protocol is not None:
            data["protocol"] = protocol
        if recover is not None:
            data["recover"] = recover
        await self.send({"event": "connect", "data": data, "ack": 0})
        frame = await self.recv()
        assert frame.get("ack") == 0 and "data" in frame, frame
        self.sid = frame["data"]["sid"]
        if join:
            reply = await self.call("user-join", {})
            assert "data" in reply, reply
        return frame["data"]

    def new_ack(self) -> int:
        """An ack id this client has not used."""
        ack, self.next_ack = self.next_ack, self.next_ack + 1
        return ack

    async def send(self, frame: dict) -> None:
        """Send a frame (a dict, as JSON)."""
        await self.transport.send(dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        """Send text as it is, or bytes as a binary frame."""
        await self.transport.send(data)

    async def recv(self, timeout: float | None = None) -> dict:
        """The next frame; SocketClosed if the server closed the socket instead."""
        return loads(await self.transport.receive(self._wait(timeout)))

    async def frames(self) -> AsyncIterator[dict]:
        """Every frame as it arrives, with no time limit, until the socket closes."""
        try:
            while True:
                yield loads(await self.transport.receive(None))
        except SocketClosed:
            return

    async def call(
        self, event: str, data=None, *, ack: int | None = None, timeout=None
    ) -> dict:
        """Emit with an ack and return the ack frame (other frames are skipped)."""
        ack = self.new_ack() if ack is None else ack
        await self.send({"event": event, "data": data, "ack": ack})
        while True:
            frame = await self.recv(timeout)
            if frame.get("ack") == ack:
                return frame

    async def event(self, name: str, timeout: float | None = None):
        """Skip frames until event `name` arrives; returns its data."""
        while True:
            frame = await self.recv(timeout)
            if frame.get("event") == name:
                return frame["data"]

    async def nothing(self, timeout: float = 0.2) -> bool:
        """True if no frame arrives within `timeout`."""
        return await self.transport.nothing(timeout)

    async def closed_code(self, timeout: float | None = None) -> int | None:
        """Skip frames until the server closes the socket; its close code (None if
        the connection dropped without a close frame)."""
        try:
            while True:
                await self.transport.receive(self._wait(timeout))
        except SocketClosed as closed:
            return closed.code

    async def close(self) -> None:
        """Close the socket (again is harmless)."""
        await self.transport.close()

    async def abort(self) -> None:
        """Drop the connection without a closing handshake, as a killed client."""
        await self.transport.abort()

    def _wait(self, timeout: float | None) -> float:
        return self.transport.timeout if timeout is None else timeout
