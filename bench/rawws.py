"""A minimal WebSocket client for the benchmarks: counts frames without the cost of a
full client library, so the server, not the measuring side, sets the pace.

1,000 sockets receiving 200,000 frames in one Python process would otherwise spend
more CPU in the client library than the server under test spends sending them.
Server frames are unmasked and, from these servers, never fragmented; pings are
answered. Not a general client: only what the benchmarks need.
"""

import asyncio
import base64
import os
import socket
import struct
from collections import deque
from collections.abc import Callable

# Engine.IO's ping packet ("2"); a Socket.IO client must answer "3" or be dropped.
EIO_PING = b"2"


class RawSocket(asyncio.Protocol):
    """One client connection; frames go to `on_frame` or queue for `recv()`."""

    def __init__(self, *, eio: bool = False) -> None:
        self.eio = eio
        self.on_frame: Callable[[bytes], None] | None = None
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._open = False
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future | None = None
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.closed = loop.create_future()

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, *, eio: bool = False
    ) -> "RawSocket":
        """Open a TCP connection and complete the WebSocket handshake."""
        loop = asyncio.get_running_loop()
        _, sock = await loop.create_connection(lambda: cls(eio=eio), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await sock.opened
        return sock

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode()))
                self.transport.close()
                return
            self._open = True
            self.opened.set_result(None)
            pos = end + 4
        size = len(buf)
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            payload = bytes(buf[start:end])
            pos = end
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode == 0x8:  # close: answer and let the server end TCP
                self._send(0x8, payload[:2])
            elif opcode in (0x1, 0x2):
                if self.eio and payload == EIO_PING:
                    self.send("3")
                elif self.on_frame is not None:
                    self.on_frame(payload)
                else:
                    self._frames.append(payload)
                    if self._waiter is not None and not self._waiter.done():
                        self._waiter.set_result(None)
        del buf[:pos]

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, 0x80 | length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(header + mask + masked)

    def send(self, text: str) -> None:
        """Send one text frame."""
        self._send(0x1, text.encode())

    async def recv(self, timeout: float = 10.0) -> bytes:
        """The next frame not taken by `on_frame`."""
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._waiter, timeout)
        return self._frames.popleft()

    def close(self) -> None:
        """Close the TCP connection (abruptly: benchmarks do not wait for the
        close handshake)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once: no close frame, no FIN, unsent data
        discarded (a TCP reset), as a network cut or a killed client looks."""
        if self.transport is not None:
            self.on_frame = None
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.transport.abort()
