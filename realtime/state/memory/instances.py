"""Instances in memory: one process is always alive to itself, so nothing is reaped."""

from realtime.state.base import ReapedInstance
from realtime.state.memory.tables import MemoryTables


class MemoryInstances(MemoryTables):
    """The InstanceStore of the memory store."""

    async def instance_refresh(
        self, *, instance_id: str, channel: str, ttl: float
    ) -> bool:
        """One process is always alive to itself."""
        self.instances.add(instance_id)
        return True

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove every session and task of the instance (sessions are the store's
        session concern, which this is composed with)."""
        self.instances.discard(instance_id)
        for task_id in [
            t.task_id for t in self.tasks.values() if t.instance_id == instance_id
        ]:
            del self.tasks[task_id]
        sids = [s.sid for s in self.sessions.values() if s.instance_id == instance_id]
        if not sids:
            return None
        rooms: set[str] = set()
        offline = []
        channel = self.sessions[sids[0]].channel
        for sid in sids:
            removed = await self.session_remove(sid=sid)
            rooms.update(removed.rooms)
            if removed.went_offline:
                offline.append(removed.user_id)
        return ReapedInstance(instance_id, channel, sorted(rooms), len(sids), offline)

    async def reap_dead_instances(self) -> list[ReapedInstance]:
        """No other instance shares this memory, so none can die unseen."""
        return []

    async def instance_list(self) -> dict[str, bool]:
        """This process's instances are alive while registered."""
        return dict.fromkeys(sorted(self.instances), True)
