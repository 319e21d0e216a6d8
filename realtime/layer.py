"""Messages between instances: one typed definition per message type, and a registry
of their handlers, dispatched by type as client events are (realtime.events).

    @on_layer("task.stop")
    async def task_stop(hub, message: TaskStop) -> None: ...

Every server process has one channel-layer channel; what other processes send it
arrives in its hub's inbox (realtime/hub/inbox.py), which looks the handler up by the
message's `type`. The module that owns a message type registers its handler: the hub
the room and session messages, realtime.calls the call messages, realtime.tasks
`task.stop`. A handler gets the receiving Hub and the message; it may be a plain
function (the hot path, `room.emit`, runs no coroutine) or a coroutine function.
"""

from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict


class RoomEmit(TypedDict):
    """A frame for every member of a room on the receiving instance."""

    type: Literal["room.emit"]
    room: str
    frame: str  # the serialized event, sent as is
    # Per dialect, the frame its sessions get instead (None: nothing), when the
    # dialects differ (realtime.dialects).
    frames: NotRequired[dict[str, str | None]]
    skip: NotRequired[str | None]  # a sid that must not get it (the sender)
    skip_user: NotRequired[int | None]  # a user whose sessions must not get it
    event: NotRequired[str]  # for metrics: events out by name
    t: NotRequired[float]  # emit time, for metrics: emit latency
    # Its position in the room's history (realtime.history), when the room keeps one;
    # `frame` and `frames` then carry it too.
    epoch: NotRequired[str]
    offset: NotRequired[int]
    volatile: NotRequired[bool]  # never given a position (typing, presence)


class SessionEmit(TypedDict):
    """A frame for one session of the receiving instance."""

    type: Literal["session.emit"]
    sid: str
    frame: str
    frames: NotRequired[dict[str, str | None]]  # as in RoomEmit
    event: NotRequired[str]


class RoomMove(TypedDict):
    """Every session here of these users enters (or leaves) a room."""

    type: Literal["room.enter", "room.leave"]
    room: str
    user_ids: list[int]


class UserClose(TypedDict):
    """Close every socket here of these users."""

    type: Literal["user.close"]
    user_ids: list[int]
    code: NotRequired[int]
    reason: NotRequired[str]


class SessionClose(TypedDict):
    """Close one socket of the receiving instance."""

    type: Literal["session.close"]
    sid: str
    code: NotRequired[int]
    reason: NotRequired[str]


class CallRequest(TypedDict):
    """Ask a session of the receiving instance something; reply to `reply_to`."""

    type: Literal["call.request"]
    sid: str
    event: str
    data: Any
    ref: str
    reply_to: str
    timeout: float


class CallReply(TypedDict):
    """A session's answer (or the server's: `error.server`) to a call."""

    type: Literal["call.reply"]
    ref: str
    data: Any
    error: dict | None


class TaskStop(TypedDict):
    """Stop a task that runs on the receiving instance."""

    type: Literal["task.stop"]
    task_id: str
    reason: NotRequired[str]  # an instance of an older release sends none


class HttpFrames(TypedDict):
    """A POST of frames for an HTTP session whose stream is on the receiving
    instance (realtime.http_transport); answered with `http.taken` to `reply_to`."""

    type: Literal["http.frames"]
    sid: str
    secret: str
    seq: int
    frames: list[str]
    ref: str
    reply_to: str


class HttpTaken(TypedDict):
    """Whether the session took a forwarded POST: its HTTP status (204, 403...)."""

    type: Literal["http.taken"]
    ref: str
    status: int


class Batch(TypedDict):
    """Several messages from one sender's outbox, in order."""

    type: Literal["batch"]
    items: list[dict]


# Every message type, with its definition (the docs and a test read this table).
MESSAGES: dict[str, type] = {
    "room.emit": RoomEmit,
    "session.emit": SessionEmit,
    "room.enter": RoomMove,
    "room.leave": RoomMove,
    "user.close": UserClose,
    "session.close": SessionClose,
    "call.request": CallRequest,
    "call.reply": CallReply,
    "task.stop": TaskStop,
    "http.frames": HttpFrames,
    "http.taken": HttpTaken,
    "batch": Batch,
}

LayerHandler = Callable[[Any, dict], Any]

_handlers: dict[str, LayerHandler] = {}


def on_layer(kind: str) -> Callable[[LayerHandler], LayerHandler]:
    """Register the handler of layer message type `kind` (one of MESSAGES)."""

    def register(handler: LayerHandler) -> LayerHandler:
        if kind not in MESSAGES:
            raise RuntimeError(f"layer message type {kind!r} has no definition")
        if kind in _handlers and _handlers[kind] is not handler:
            raise RuntimeError(f"layer message type {kind!r} is registered twice")
        _handlers[kind] = handler
        return handler

    return register


def layer_handler(kind: str | None) -> LayerHandler | None:
    """The registered handler of a message type, if any."""
    return _handlers.get(kind) if kind is not None else None


def layer_types() -> list[str]:
    """Every message type that has a handler, sorted."""
    return sorted(_handlers)
