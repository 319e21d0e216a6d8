"""Room history in memory: each room's epoch, last offset and its window of events."""

import secrets
import time
from collections import deque

from django.conf import settings

from realtime.state.base import HistoryRead
from realtime.state.memory.tables import MemoryTables

# Epochs are random: a process that restarts starts every room anew.
EPOCH_BYTES = 6


class _Room:
    __slots__ = ("epoch", "offset", "items")

    def __init__(self) -> None:
        self.epoch = secrets.token_urlsafe(EPOCH_BYTES)
        self.offset = 0
        self.items: deque[tuple[int, float, str]] = deque()


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
        for room, record in appends:
            entry = self._history_room(room)
            entry.offset += 1
            entry.items.append((entry.offset, now, record))
            items = entry.items
            while len(items) > size or items[0][1] < oldest:
                items.popleft()
            positions.append((entry.epoch, entry.offset))
        routes = {room: set(self.routes.get(room, ())) for room in rooms}
        return positions, routes

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
