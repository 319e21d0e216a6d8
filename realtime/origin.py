"""Refuse WebSocket handshakes from origins that are not allowed.

Browsers always send Origin, so a page on another site cannot open a socket with a
user's token; services (no Origin header) are allowed. The server's own host is always
allowed; ALLOWED_ORIGINS adds others ("*" allows any).
"""

from urllib.parse import urlparse

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def origin_allowed(scope: dict) -> bool:
    """Whether the handshake's Origin may open a socket."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    allowed = settings.ALLOWED_ORIGINS
    if "*" in allowed:
        return True
    origin = origin.rstrip("/").lower()
    if origin in {o.rstrip("/").lower() for o in allowed}:
        return True
    host = _header(scope, b"host")
    parsed = urlparse(origin)
    return (
        bool(host)
        and parsed.scheme in {"http", "https"}
        and parsed.netloc == host.lower()
    )


class OriginMiddleware:
    """ASGI middleware: deny the handshake (HTTP 403) for a disallowed Origin, and
    every handshake while ENABLE_WEBSOCKET_SUPPORT is false (clients then use the
    HTTP transport, realtime.http_transport, which checks Origin itself)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and (
            not settings.ENABLE_WEBSOCKET_SUPPORT or not origin_allowed(scope)
        ):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.app(scope, receive, send)
