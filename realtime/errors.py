"""Stable error codes of the wire protocol and REST API, and their exception."""

UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
BAD_REQUEST = "bad_request"
RATE_LIMITED = "rate_limited"
UNKNOWN_EVENT = "unknown_event"
TIMEOUT = "timeout"
DISCONNECTED = "disconnected"
INTERNAL = "internal"

CODES = frozenset(
    {UNAUTHORIZED, FORBIDDEN, NOT_FOUND, BAD_REQUEST, RATE_LIMITED, UNKNOWN_EVENT}
    | {TIMEOUT, DISCONNECTED, INTERNAL}
)

# WebSocket close codes.
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 1013


class CallError(Exception):
    """A client answered a server call with an error object."""

    def __init__(self, code: object, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class EventError(Exception):
    """An error reply: raised by handlers and services, sent as {"code", "message"}."""

    def __init__(self, code: str, message: str = "") -> None:
        assert code in CODES, code
        super().__init__(message or code)
        self.code = code
        self.message = message or code.replace("_", " ")

    def as_dict(self) -> dict:
        """The error object as it appears on the wire."""
        return {"code": self.code, "message": self.message}
