"""Routes in memory: which instance channels each room's events go to."""

from realtime.state.memory.tables import MemoryTables


class MemoryRoutes(MemoryTables):
    """The RouteStore of the memory store (it never loses them: no RoutesRebuilding)."""

    async def route_add(self, *, room: str, channel: str, instance_id: str) -> None:
        """Send the room's events to this instance channel."""
        self.routes.setdefault(room, set()).add(channel)

    async def route_remove(self, *, room: str, channel: str, instance_id: str) -> None:
        """Stop sending the room's events to this instance channel."""
        channels = self.routes.get(room)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.routes[room]

    async def routes_for(self, *, rooms: list[str]) -> dict[str, set[str]]:
        """The instance channels of each room."""
        return {room: set(self.routes.get(room, ())) for room in rooms}
