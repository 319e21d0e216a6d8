"""In-process state for the embedded default (one server process): one file per
concern, mirroring the Redis store, over the dicts of tables.py."""

from realtime.state.memory.history import MemoryHistory
from realtime.state.memory.instances import MemoryInstances
from realtime.state.memory.locks import MemoryLocks
from realtime.state.memory.presence import MemoryPresence
from realtime.state.memory.rooms import MemoryRooms
from realtime.state.memory.routes import MemoryRoutes
from realtime.state.memory.sessions import MemorySessions
from realtime.state.memory.tasks import MemoryTasks
from realtime.state.memory.usage import MemoryUsage

__all__ = ["MemoryState"]


class MemoryState(
    MemorySessions,
    MemoryRooms,
    MemoryRoutes,
    MemoryHistory,
    MemoryPresence,
    MemoryInstances,
    MemoryTasks,
    MemoryUsage,
    MemoryLocks,
):
    """Sessions, rooms and presence in dicts; no other process can see them."""
