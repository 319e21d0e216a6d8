"""Distributed tasks in memory: running tasks and the instances that run them."""

from realtime.state.base import TaskRecord
from realtime.state.memory.tables import MemoryTables


class MemoryTasks(MemoryTables):
    """The TaskStore of the memory store."""

    async def task_add(self, *, record: TaskRecord) -> None:
        """Record a running task."""
        self.tasks[record.task_id] = record

    async def task_remove(self, *, task_id: str) -> None:
        """Forget a finished task."""
        self.tasks.pop(task_id, None)

    async def task_get(self, *, task_id: str) -> TaskRecord | None:
        """One running task."""
        return self.tasks.get(task_id)

    async def task_list(self) -> list[TaskRecord]:
        """Every running task."""
        return sorted(self.tasks.values(), key=lambda t: t.created_at)

    async def task_ids_for_item(self, *, item_id: str) -> set[str]:
        """Running tasks of an item."""
        return {t.task_id for t in self.tasks.values() if t.item_id == item_id}

    async def task_prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove (or list) task records of instances that are gone."""
        stale = sorted(
            t.task_id
            for t in self.tasks.values()
            if t.instance_id not in self.instances
        )
        if not dry_run:
            for task_id in stale:
                del self.tasks[task_id]
        return stale
