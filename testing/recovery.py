"""What a resuming client keeps: its last position per room and what it received,
for tests of resumable delivery (docs/protocol.md §8)."""

import asyncio

from testing.clients import SocketClient, SocketClosed
from testing.cluster import http_post
from testing.factories import token_for

# The prompt of the completions these tests start (fake_tokens(PROMPT, n) is the text).
PROMPT = "what is streaming"


async def completion_start(server, user, chat, *, tokens: int, tps: float) -> dict:
    """Start a fake-model completion of `chat` on `server` over REST; its reply."""
    status, reply = await asyncio.to_thread(
        http_post,
        f"{server.http}/api/chats/{chat.id}/completions",
        {"prompt": PROMPT, "tokens": tokens, "tokens_per_second": tps},
        token_for(user),
    )
    assert status == 202, reply
    return reply


class Positions:
    """The positions a client saw per room, and every positioned frame in order;
    a frame whose offset does not move its room forward is a duplicate."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict] = {}
        self.frames: list[dict] = []
        self.duplicates: list[dict] = []
        self.sid: str | None = None

    def hello(self, data: dict) -> None:
        """Take the connect ack: the sid, and the starting positions."""
        self.sid = data["sid"]
        for room, position in data.get("positions", {}).items():
            self.adopt(room, position)

    def adopt(self, room: str, position: dict) -> None:
        """Start (again) from a position the server gave."""
        self.rooms[room] = {"epoch": position["epoch"], "offset": position["offset"]}

    def see(self, frame: dict) -> bool:
        """Record a frame; False if it is a duplicate (or out of order)."""
        # Where a room starts; for a recovery, only one that failed (a recovered
        # room's missed events follow, after the position the client had).
        event, data = frame.get("event"), frame.get("data")
        if event == "position" or (event == "recovery" and not data["recovered"]):
            self.adopt(data["room"], data)
        room = frame.get("room")
        if room is None:
            return True
        known = self.rooms.get(room)
        if (
            known is not None
            and known["epoch"] == frame["epoch"]
            and frame["offset"] <= known["offset"]
        ):
            self.duplicates.append(frame)
            return False
        self.rooms[room] = {"epoch": frame["epoch"], "offset": frame["offset"]}
        self.frames.append(frame)
        return True

    def recover(self) -> dict:
        """The connect frame's `recover`."""
        return {"sid": self.sid, "rooms": {r: dict(p) for r, p in self.rooms.items()}}


async def read_chat(
    client: SocketClient,
    positions: Positions,
    pieces: list[str],
    *,
    until: str = "chat:completion",
    limit: int | None = None,
    timeout: float = 10,
) -> str:
    """Read frames, appending each new `message` delta of the chat stream to
    `pieces`, until an event of type `until` ("until"), `limit` pieces ("limit")
    or the connection drops ("closed")."""
    while True:
        try:
            frame = await client.recv(timeout)
        except SocketClosed:
            return "closed"
        if not positions.see(frame) or frame.get("event") != "events":
            continue
        event = frame["data"].get("data") or {}
        if event.get("type") == "message":
            pieces.append(event["data"]["content"])
            if limit is not None and len(pieces) >= limit:
                return "limit"
        if event.get("type") == until:
            return "until"
