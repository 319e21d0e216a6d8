"""Small ASGI HTTP helpers of the HTTP transport: headers, a bounded body, errors."""

from realtime import wire
from realtime.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, RATE_LIMITED, TIMEOUT
from realtime.origin import origin_allowed

# The one content type of a body of frames: one frame per line. Not a "simple" type,
# so a browser preflights a cross-origin POST (which this server never allows).
NDJSON = "application/x-ndjson"

# The error code of each status the transport answers with (docs/protocol.md §4).
CODES = {
    400: BAD_REQUEST,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: BAD_REQUEST,
    409: BAD_REQUEST,
    413: BAD_REQUEST,
    415: BAD_REQUEST,
    429: RATE_LIMITED,
    503: TIMEOUT,
}


class HttpError(Exception):
    """A request refused before it reached a session: a status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client went away while its request was being read."""


def header(scope: dict, name: bytes) -> str | None:
    """A request header's value (the first), if present."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def check_request(scope: dict, *, limit: int) -> None:
    """Method, Origin (the rule of §1, as for a WebSocket handshake), declared size."""
    if scope["method"] != "POST":
        raise HttpError(405, "only POST is allowed here")
    if not origin_allowed(scope):
        raise HttpError(403, "origin not allowed")
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HttpError(413, f"the body is larger than {limit} bytes")


async def read_frames(
    scope: dict, receive, *, limit: int, max_frames: int
) -> list[str]:
    """The body's frames, one per line; HttpError for a body that is too large, of
    another content type, not UTF-8 or of more than `max_frames` frames."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes")
        chunks.append(body)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    if not body:
        return []
    kind = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if kind != NDJSON:
        raise HttpError(415, f"the body must be {NDJSON}: one frame per line")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HttpError(400, "the body is not UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the last frame's newline ends the body
        lines.pop()
    if len(lines) > max_frames:
        raise HttpError(400, "too many frames in one request")
    return lines


async def respond(send, status: int, message: str = "") -> None:
    """A whole response: empty for 204, else the REST error shape."""
    if status == 204:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = wire.dumps({"error": {"code": CODES[status], "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
