"""What tests watch in the background while they break things: every frame a
client receives (Recorder), and how many workers of a fleet lead (LeaderWatch)."""

import asyncio
import re
import time
import urllib.request

from testing.clients import SocketClient, SocketClosed


class Background:
    """A task of a test's own, from construction until stop()."""

    def __init__(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Cancel the task and wait for it."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Recorder(Background):
    """Every frame one client receives, read in the background; whether the socket
    closed, and the frames that carry an error."""

    def __init__(self, client: SocketClient) -> None:
        self.client = client
        self.frames: list[dict] = []
        self.closed = False
        super().__init__()

    async def _run(self) -> None:
        while True:
            try:
                self.frames.append(await self.client.recv(1))
            except TimeoutError:
                continue  # quiet for a second: keep listening
            except SocketClosed:
                self.closed = True
                return

    def errors(self) -> list[dict]:
        """Frames with an error: a refused call, or an error event."""
        return [f for f in self.frames if "error" in f or f.get("event") == "error"]

    def delivered(self) -> list[dict]:
        """The frames as a client applies them: a positioned frame whose offset does
        not move its room forward is a duplicate and dropped (docs/protocol.md §8)."""
        last: dict[tuple, int] = {}
        out = []
        for frame in self.frames:
            if "room" in frame and "offset" in frame:
                where = (frame["room"], frame.get("epoch"))
                if frame["offset"] <= last.get(where, -1):
                    continue
                last[where] = frame["offset"]
            out.append(frame)
        return out

    def duplicates(self) -> int:
        """How many positioned frames arrived again (or out of order)."""
        return len(self.frames) - len(self.delivered())

    def stream(self, message_id: str) -> list[dict]:
        """The chat events of one assistant message, as the client applies them."""
        return [
            f["data"]["data"]
            for f in self.delivered()
            if f.get("event") == "events" and f["data"]["message_id"] == message_id
        ]

    def pieces(self, message_id: str) -> list[str]:
        """The text deltas of one assistant message."""
        return [
            e["data"]["content"]
            for e in self.stream(message_id)
            if e.get("type") == "message"
        ]

    async def until(self, check, timeout: float, what: str):
        """Wait until check() is true of what arrived."""
        deadline = time.monotonic() + timeout
        while not (value := check()):
            assert not self.closed, f"closed while waiting for {what}"
            assert time.monotonic() < deadline, f"{what}: {self.frames[-5:]}"
            await asyncio.sleep(0.05)
        return value

    async def stop(self) -> None:
        """Stop reading and close the socket."""
        await super().stop()
        await self.client.close()

    def channel_messages(self) -> list[str]:
        """The contents of the channel messages received (events:channel)."""
        return [
            f["data"]["data"]["data"]["content"]
            for f in self.delivered()
            if f.get("event") == "events:channel"
            and f["data"]["data"].get("type") == "message"
        ]


def leaders(instances) -> int:
    """How many instances' workers say they lead (their realtime_worker_leader)."""
    count = 0
    for server in instances:
        with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        found = re.search(r"^realtime_worker_leader (\S+)$", text, re.M)
        count += int(float(found[1])) if found else 0
    return count


class LeaderWatch(Background):
    """How many workers lead, sampled in the background: (time, count) pairs."""

    def __init__(self, instances) -> None:
        self.instances = instances
        self.samples: list[tuple[float, int]] = []
        super().__init__()

    async def _run(self) -> None:
        while True:
            count = await asyncio.to_thread(leaders, self.instances)
            self.samples.append((time.monotonic(), count))
            await asyncio.sleep(0.2)

    def settled_at(self) -> float | None:
        """When the count became 1 for good (None: it is not 1 now)."""
        settled = None
        for at, count in self.samples:
            if count != 1:
                settled = None
            elif settled is None:
                settled = at
        return settled

    async def one_leader(self, timeout: float) -> float:
        """Wait until one worker has led for a second; when that began."""
        deadline = time.monotonic() + timeout
        while (at := self.settled_at()) is None or time.monotonic() - at < 1:
            assert time.monotonic() < deadline, f"no single leader: {self.samples}"
            await asyncio.sleep(0.1)
        return at
