"""The WebSocket endpoint: text frames in and out of a Connection
(realtime.connection), which reads each frame, finds its handler, checks the payload
and answers.

Business logic lives in the handlers each app registers (realtime.events).
"""

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from realtime.connection import Connection


class RealtimeConsumer(AsyncWebsocketConsumer):
    """Protocol of docs/protocol.md over JSON text frames."""

    # No layer channel per socket: the hub's one channel per process receives for all.
    channel_layer_alias = "realtime-per-socket-channel-disabled"

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch closes stale database connections before every message,
        one hop through asgiref's single thread-sensitive thread per frame, which
        every socket of the process queues on. Every database call of this project
        goes through DatabaseSyncToAsync (database_sync_to_async, background_db),
        which does the same around the call itself, so the hop is skipped (it was
        also a third of a connect's cost in the scale benchmark's profile)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """Accept, then wait AUTH_TIMEOUT for the connect frame."""
        self.connection = Connection(send=self._send_text, close=self._close)
        self.session = self.connection.session
        await self.connection.prepare()
        await self.accept()
        self.connection.start()

    async def _send_text(self, text: str) -> None:
        # The ASGI send itself: the per-frame hot path skips the consumer's wrapper.
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self, code: int) -> None:
        try:
            await self.close(code=code)
        except Exception:
            # daphne (autobahn) lets applications send only 1000 and 3000-4999 and
            # raises on 1009/1013; close with the 4xxx twin rather than stay open.
            await self.close(code=fallback_close_code(code))

    async def disconnect(self, code: int) -> None:
        """Run app hooks, then forget the session everywhere."""
        await self.connection.disconnect()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        """Handle one client frame."""
        if text_data is None:
            self.connection.refuse_binary()
        else:
            await self.connection.receive(text_data)


def fallback_close_code(code: int) -> int:
    """The application-range twin of a protocol close code: 1009 -> 4009."""
    return 4000 + code % 1000 if 1000 < code < 3000 else code
