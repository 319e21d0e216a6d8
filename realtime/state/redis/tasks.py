"""Distributed tasks in Redis: running tasks and the instances that run them.

p:t:{tid}            hash    item_id, user_id, instance, channel, created_at
p:tasks              set     running task ids
p:item:{item}:tasks  set     running tasks of an item
p:i:{iid}:tasks      set     tasks run by the instance
"""

from realtime.state.base import TaskRecord
from realtime.state.redis.client import RedisConnection, per_key
from realtime.state.redis.instances import instances_alive
from realtime.state.redis.scripts import TASK_ADD, TASK_REMOVE


def _task_record(task_id: str, data: dict) -> TaskRecord:
    """A task's record from its hash."""
    return TaskRecord(
        task_id=task_id,
        item_id=data["item_id"],
        user_id=int(data["user_id"]) if data.get("user_id") else None,
        instance_id=data["instance"],
        channel=data["channel"],
        created_at=float(data["created_at"]),
    )


class RedisTasks(RedisConnection):
    """The TaskStore of the Redis store."""

    async def task_add(self, *, record: TaskRecord) -> None:
        """Record a running task."""
        await self.run(
            TASK_ADD,
            record.task_id,
            record.item_id,
            "" if record.user_id is None else record.user_id,
            record.instance_id,
            record.channel,
            record.created_at,
        )

    async def task_remove(self, *, task_id: str) -> None:
        """Forget a finished task; its keys go with it."""
        await self.run(TASK_REMOVE, task_id)

    async def task_get(self, *, task_id: str) -> TaskRecord | None:
        """One running task."""
        data = await self.client().hgetall(f"{self.p}:t:{task_id}")
        return _task_record(task_id, data) if data else None

    async def task_list(self) -> list[TaskRecord]:
        """Every running task, on every instance."""
        ids = await self._task_ids()
        rows = await per_key(self.client(), "hgetall", self._task_keys(ids))
        records = [_task_record(t, d) for t, d in zip(ids, rows, strict=True) if d]
        return sorted(records, key=lambda r: r.created_at)

    async def task_ids_for_item(self, *, item_id: str) -> set[str]:
        """Running tasks of an item."""
        return set(await self.client().smembers(f"{self.p}:item:{item_id}:tasks"))

    async def task_prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove (or list) task records of instances that are not alive, and ids
        in the task index without a record."""
        client = self.client()
        ids = await self._task_ids()
        pipe = client.pipeline(transaction=False)
        for key in self._task_keys(ids):
            pipe.hget(key, "instance")
        owners = await pipe.execute()
        alive = await instances_alive(client, self.p, sorted({o for o in owners if o}))
        stale = [
            tid
            for tid, owner in zip(ids, owners, strict=True)
            if not owner or not alive[owner]
        ]
        if not dry_run:
            for tid in stale:
                await self.task_remove(task_id=tid)
        return stale

    async def _task_ids(self) -> list[str]:
        return sorted(await self.client().smembers(f"{self.p}:tasks"))

    def _task_keys(self, task_ids: list[str]) -> list[str]:
        return [f"{self.p}:t:{tid}" for tid in task_ids]
