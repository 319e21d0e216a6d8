"""Encoding and decoding of JSON text frames (docs/protocol.md, "Frames")."""

from dataclasses import dataclass
from typing import Any

import orjson

from realtime.errors import BAD_REQUEST, EventError

# JavaScript numbers are exact up to 2**53; ack and call ids must survive a round trip.
MAX_ID = 2**53 - 1
MAX_EVENT_NAME = 128

_MISSING = object()


def dumps(obj: Any) -> str:
    """Serialize to compact JSON text."""
    return orjson.dumps(obj).decode()


def loads(text: str | bytes) -> Any:
    """Parse JSON text; raises ValueError on anything that is not strict JSON."""
    return orjson.loads(text)


def event_frame(event: str, data: Any) -> str:
    """A server-to-client event."""
    return dumps({"event": event, "data": data})


def call_frame(event: str, data: Any, call_id: int) -> str:
    """A server-to-client call, answered by a reply frame."""
    return dumps({"event": event, "data": data, "call": call_id})


def ack_frame(ack: int, data: Any) -> str:
    """A successful answer to an acked emit."""
    return dumps({"ack": ack, "data": data})


def ack_error_frame(ack: int, error: EventError) -> str:
    """An error answer to an acked emit."""
    return dumps({"ack": ack, "error": error.as_dict()})


def error_event_frame(error: EventError, event: str | None = None) -> str:
    """An error for a frame that had no ack id to answer to."""
    data = error.as_dict()
    if event is not None:
        data["event"] = event
    return dumps({"event": "error", "data": data})


@dataclass(slots=True)
class Emit:
    """A client emit: {"event", "data", "ack"?}."""

    event: str
    data: Any
    ack: int | None


@dataclass(slots=True)
class Reply:
    """A client's answer to a server call: {"reply", "data"} or {"reply", "error"}."""

    call_id: int
    data: Any
    error: dict | None


def _valid_id(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_ID


def parse_frame(text: str) -> Emit | Reply:
    """Decode one client frame; raises FrameError (carrying the ack id when known)."""
    try:
        frame = loads(text)
    except ValueError:
        raise FrameError("frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("frame must be a JSON object")
    if "reply" in frame:
        return _parse_reply(frame)
    ack = frame.get("ack", _MISSING)
    if ack is _MISSING or ack is None:
        ack = None
    elif not _valid_id(ack):
        raise FrameError("ack must be an integer from 0 to 2**53-1")
    extra = set(frame) - {"event", "data", "ack"}
    if extra:
        raise FrameError(f"unknown frame field(s): {', '.join(sorted(extra))}", ack)
    event = frame.get("event")
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT_NAME:
        raise FrameError(
            "event must be a non-empty string of at most 128 characters", ack
        )
    return Emit(event=event, data=frame.get("data"), ack=ack)


def _parse_reply(frame: dict) -> Reply:
    call_id = frame["reply"]
    if not _valid_id(call_id):
        raise FrameError("reply must be an integer call id")
    extra = set(frame) - {"reply", "data", "error"}
    if extra:
        raise FrameError(f"unknown frame field(s): {', '.join(sorted(extra))}")
    error = frame.get("error")
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("code"), str)
    ):
        raise FrameError('reply error must be an object with a string "code"')
    return Reply(call_id=call_id, data=frame.get("data"), error=error)


class FrameError(EventError):
    """A frame that could not be understood; answered with bad_request."""

    def __init__(self, message: str, ack: int | None = None) -> None:
        super().__init__(BAD_REQUEST, message)
        self.ack = ack


def positioned(frame: str, room: str, epoch: str, offset: int) -> str:
    """An event frame with its position in a room's history: the same object with
    "room", "epoch" and "offset" appended (docs/protocol.md §8), without parsing it."""
    return (
        f'{frame[:-1]},"room":{dumps(room)},"epoch":{dumps(epoch)},"offset":{offset}}}'
    )
