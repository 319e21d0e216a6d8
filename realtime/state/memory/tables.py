"""The dicts of the memory store: what the Redis store keeps under its keys.

Every concern of the memory store reads and writes these, as every concern of the
Redis store reaches every key: removing a session takes its room memberships and
usage marks with it, reaping an instance takes its sessions and tasks.
"""

from realtime.state.base import SessionRecord, TaskRecord


class MemoryTables:
    """The memory store's data; no other process can see it."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}
        self.session_room_sets: dict[str, set[str]] = {}
        self.rooms: dict[str, set[str]] = {}
        self.users: dict[int, set[str]] = {}
        self.throttles: dict[str, float] = {}
        self.presence_version = 0
        self.presence_sent = 0
        self.presence_last = 0.0
        self.tasks: dict[str, TaskRecord] = {}
        self.routes: dict[str, set[str]] = {}
        self.usage: dict[tuple[str, str], float] = {}  # (sid, model) -> expires at
        self.usage_sent: list[str] = []
        self.usage_last = float("-inf")
        self.locks: dict[str, tuple[str, float]] = {}  # name -> (owner, expires at)
        self.instances: set[str] = set()
        self.history: dict = {}  # room -> its epoch, offset and window (history.py)
        self.history_appends = 0  # since the last sweep of quiet rooms

    async def close(self) -> None:
        """Nothing to release."""
