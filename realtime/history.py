"""Positions and history of rooms: what makes delivery resumable (docs/protocol.md §8).

Every event sent to a room of a kind in HISTORY_ROOM_KINDS (not volatile) is given
the room's next offset by the sending process's outbox, in the same round trip that
stores it in the room's window (realtime.state, HistoryStore) and looks up its routes;
its frames then carry "room", "epoch" and "offset". Each instance hands a room's
events to its sockets in offset order (realtime/hub/ordering.py). A socket that comes
back presents the last position it saw per room; the events after it are read from
the window and sent before any live event of that room (replay()).
"""

from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

from django.conf import settings
from pydantic import Field, StringConstraints

from realtime import wire
from realtime.events import Payload
from realtime.state import HistoryRead

# Bounds of what a client presents: a page has a user room and some channels; a
# room name, an epoch (ours are 8 characters) and an offset of JSON-safe size.
RECOVER_ROOMS_MAX = 100
ROOM_NAME_MAX = 200
EPOCH_MAX = 64
OFFSET_MAX = 2**53 - 1

RoomName = Annotated[str, StringConstraints(min_length=1, max_length=ROOM_NAME_MAX)]
Epoch = Annotated[str, StringConstraints(max_length=EPOCH_MAX)]
Offset = Annotated[int, Field(ge=0, le=OFFSET_MAX)]


class Position(NamedTuple):
    """Where an event is in its room's history."""

    room: str
    epoch: str
    offset: int

    def as_dict(self) -> dict:
        """The wire shape: {"epoch", "offset"} (the room is the key around it)."""
        return {"epoch": self.epoch, "offset": self.offset}


class RoomPositionPayload(Payload):
    """A position a client presents: {"epoch", "offset"}."""

    epoch: Epoch
    offset: Offset


class RecoverPayload(Payload):
    """The connect frame's `recover`: the previous sid and a position per room."""

    sid: Annotated[str, StringConstraints(max_length=EPOCH_MAX)] | None = None
    rooms: Annotated[
        dict[RoomName, RoomPositionPayload], Field(max_length=RECOVER_ROOMS_MAX)
    ]

    def positions(self) -> dict[str, "Position"]:
        """Room -> the Position presented."""
        return {
            room: Position(room, p.epoch, p.offset) for room, p in self.rooms.items()
        }


def keeps_history(room: str) -> bool:
    """Whether events to this room get positions and a window (HISTORY_ROOM_KINDS)."""
    return room.partition(":")[0] in settings.HISTORY_ROOM_KINDS


def record_of(message: dict) -> str:
    """What the window keeps of a room.emit message: its frames (without positions)
    and whom it skips, so a replay sends each socket what it would have got live."""
    record: dict[str, Any] = {"f": message["frame"]}
    if message.get("frames"):
        record["fs"] = message["frames"]
    if message.get("skip") is not None:
        record["s"] = message["skip"]
    if message.get("skip_user") is not None:
        record["u"] = message["skip_user"]
    if message.get("event"):
        record["e"] = message["event"]
    return wire.dumps(record)


def place(message: dict, position: Position) -> None:
    """Give a room.emit message its position: fields and frames."""
    room, epoch, offset = position
    message["epoch"] = epoch
    message["offset"] = offset
    message["frame"] = wire.positioned(message["frame"], room, epoch, offset)
    frames = message.get("frames")
    if frames:
        message["frames"] = {
            dialect: None if frame is None else wire.positioned(frame, *position)
            for dialect, frame in frames.items()
        }


def message_of(room: str, epoch: str, offset: int, record: str) -> dict:
    """The room.emit message a window record was made from, with its position."""
    stored = wire.loads(record)
    message = {
        "type": "room.emit",
        "room": room,
        "frame": stored["f"],
        "skip": stored.get("s"),
        "event": stored.get("e", ""),
    }
    if "fs" in stored:
        message["frames"] = stored["fs"]
    if stored.get("u") is not None:
        message["skip_user"] = stored["u"]
    place(message, Position(room, epoch, offset))
    return message


def frame_for(message: dict, session, skip_sids: tuple = ()) -> str | None:
    """The frame of a room.emit message this session gets (None: none), as the
    hub's fan-out chooses it; `skip_sids` are earlier sids of the same client."""
    skip = message.get("skip")
    if skip is not None and (skip == session.sid or skip in skip_sids):
        return None
    skip_user = message.get("skip_user")
    if skip_user is not None and session.user_id == skip_user:
        return None
    frames = message.get("frames")
    if frames is None:
        return message["frame"]
    return frames.get(session.protocol, message["frame"])


def events_of(session, room: str, read: HistoryRead) -> list[dict]:
    """A history read as the `history` ack lists it: what this session would have
    got, {"event", "data", "offset"} each."""
    out = []
    if read.status != "ok":
        return out
    for offset, record in read.items:
        message = message_of(room, read.epoch, offset, record)
        frame = frame_for(message, session, session.previous_sids)
        if frame is not None:
            sent = wire.loads(frame)
            out.append(
                {"event": sent["event"], "data": sent.get("data"), "offset": offset}
            )
    return out


@dataclass(slots=True)
class Recovery:
    """A room being recovered for a session: its live frames wait here until the
    missed ones (`frames`, read from the window) are sent."""

    room: str
    asked: Position
    read: HistoryRead | None = None
    frames: list[str] = field(default_factory=list)
    waiting: list[tuple[int, str]] = field(default_factory=list)
    # After the replay: live frames at or below the replay's last offset are ones
    # it already sent (stored before the read, still on their way here then).
    live: bool = False
    # Its read also starts the instance's order of the room (a route added for it).
    orders_room: bool = False

    def result(self) -> dict:
        """The wire shape of the outcome (connect ack `recovery`, `recovery` event)."""
        read = self.read
        if read is None:  # the room keeps no history, or it could not be read
            return {"recovered": False, "reason": "disabled"}
        out: dict[str, Any] = {
            "recovered": read.status == "ok",
            "epoch": read.epoch,
            "offset": read.offset,
        }
        if read.status == "ok":
            out["replayed"] = len(self.frames)
        else:
            out["reason"] = read.status
        return out


async def recovery_read(recovery: Recovery, state, session) -> None:
    """Read what the session missed in the room (after it joined it): the frames it
    would have got, its own echoes and other dialects' nothings left out."""
    if not keeps_history(recovery.room):
        return
    asked = recovery.asked
    read = recovery.read = await state.history_read(
        room=recovery.room,
        epoch=asked.epoch,
        offset=asked.offset,
        limit=settings.HISTORY_SIZE,
    )
    if read.status != "ok":
        return
    for offset, record in read.items:
        message = message_of(recovery.room, read.epoch, offset, record)
        frame = frame_for(message, session, session.previous_sids)
        if frame is not None:
            recovery.frames.append(frame)


def replay(session, recovery: Recovery) -> int:
    """Send the missed events, then the live ones that waited, each once and in
    order; the room is live for the session after this. The frames sent."""
    top = recovery.read.offset if recovery.read is not None else 0
    for frame in recovery.frames:
        session.push(frame)
    sent = len(recovery.frames)
    for offset, frame in recovery.waiting:
        if offset > top:
            session.push(frame)
            sent += 1
            top = offset
    recovery.frames = []
    recovery.waiting = []
    if recovery.read is None or top == 0:
        session.recovering.pop(recovery.room, None)
    else:
        # An event stored before the read may reach this instance after it: until
        # one beyond `top` comes, the session's live frames are checked against it.
        recovery.live = True
        recovery.read = HistoryRead(recovery.read.status, recovery.read.epoch, top)
    return sent


def live_frame(session, recovery: Recovery, message: dict, frame: str) -> None:
    """A live frame of a room recovered moments ago: sent unless the replay already
    sent it; the first one beyond the replay ends the check."""
    read = recovery.read
    if message["epoch"] == read.epoch and message["offset"] <= read.offset:
        return
    session.recovering.pop(recovery.room, None)
    session.push(frame)
