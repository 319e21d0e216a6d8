"""Room history in memory: each room's epoch, last offset and its window of events."""

import secrets
import time
from collections import deque

from django.conf import settings

from realtime.state.base import HistoryRead
from realtime.state.memory.tables import MemoryTables

# Epochs are random: a process that restarts starts every room anew.
EPOCH_BYTES = 6
# Every this many appends, rooms that went quiet are swept: their expired events
# dropped, and after HISTORY_META_TTL their epoch and offset too (what Redis's key
# TTLs do there). A sweep walks every room once, so it is rare enough to cost
# nothing per event, and often enough that idle users' windows do not pile up.
SWEEP_EVERY = 10_000


class _Room:
    __slots__ = ("epoch", "offset", "items", "last")

    def __init__(self) -> None:
        self.epoch = secrets.token_urlsafe(EPOCH_BYTES)
        self.offset = 0
        self.items: deque[tuple[int, float, str]] = deque()
        self.last = time.time()  # the last append (or creation)


class MemoryHistory(MemoryTables):
    """The HistoryStore of the memory store (one process: its memory is the window)."""

    def _history_room(self, room: str) -> _Room:
        found = self.history.get(room)
        if found is None:
            found = self.history[room] = _Room()
        return found

    async def history_publish(
        self, *, appends: list[tuple[str, str]], rooms: list[str]
    ) -> tuple[list[tuple[str, int]], dict[str, set[str]] | None]:
        """Append each (room, record) at the room's next offset; then the routes."""
        now = time.time()
        size = settings.HISTORY_SIZE
        oldest = now - settings.HISTORY_TTL
        positions = []
        self.history_appends += len(appends)
        if self.history_appends >= SWEEP_EVERY:
            self.history_appends = 0
            self._history_sweep(now, oldest)
        for room, record in appends:
            entry = self._history_room(room)
            entry.last = now
            entry.offset += 1
            entry.items.append((entry.offset, now, record))
            items = entry.items
            while len(items) > size or items[0][1] < oldest:
                items.popleft()
            positions.append((entry.epoch, entry.offset))
        routes = {room: set(self.routes.get(room, ())) for room in rooms}
        return positions, routes

    def _history_sweep(self, now: float, oldest: float) -> None:
        forget_before = now - settings.HISTORY_META_TTL
        for room, entry in list(self.history.items()):
            while entry.items and entry.items[0][1] < oldest:
                entry.items.popleft()
            if not entry.items and entry.last < forget_before:
                del self.history[room]

    async def history_read(
        self, *, room: str, epoch: str, offset: int, limit: int
    ) -> HistoryRead:
        """The records after (epoch, offset), if the window holds them all."""
        entry = self._history_room(room)
        top = entry.offset

        def answer(status: str, items=()) -> HistoryRead:
            return HistoryRead(status, entry.epoch, top, list(items))

        if epoch != entry.epoch:
            return answer("epoch")
        if offset > top:
            return answer("ahead")
        need = top - offset
        if need == 0:
            return answer("ok")
        if need > limit or need > len(entry.items):
            return answer("trimmed")
        wanted = list(entry.items)[-need:]
        if wanted[0][1] < time.time() - settings.HISTORY_TTL:
            return answer("expired")
        return answer("ok", ((o, record) for o, _, record in wanted))

    async def history_top(self, *, rooms: list[str]) -> dict[str, tuple[str, int]]:
        """Each room's position now."""
        result = {}
        for room in rooms:
            entry = self._history_room(room)
            result[room] = (entry.epoch, entry.offset)
        return result
