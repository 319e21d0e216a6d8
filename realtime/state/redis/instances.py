"""Instance liveness in Redis, and reaping the instances whose liveness lapsed.

    p:instances          hash    instance id -> its channel-layer channel
    p:i:{iid}:alive      string with a TTL, renewed by the live instance

Reaping an instance removes its sessions, tasks and routes (the keys of
sessions.py, tasks.py and routes.py) in one script.
"""

import redis.asyncio as aioredis

from realtime.state.base import ReapedInstance
from realtime.state.redis.client import RedisConnection, ms, per_key
from realtime.state.redis.scripts import REAP, flag


async def instances_alive(
    client: aioredis.Redis, prefix: str, instance_ids: list[str]
) -> dict[str, bool]:
    """Whether each instance's liveness key is fresh, in the order given."""
    keys = [f"{prefix}:i:{iid}:alive" for iid in instance_ids]
    alive = await per_key(client, "exists", keys)
    return {iid: bool(a) for iid, a in zip(instance_ids, alive, strict=True)}


class RedisInstances(RedisConnection):
    """The InstanceStore of the Redis store."""

    async def instance_refresh(
        self, *, instance_id: str, channel: str, ttl: float
    ) -> bool:
        """Renew the liveness key; False if it had lapsed (or Redis lost it)."""
        pipe = self.atomic_pipeline()
        pipe.set(f"{self.p}:i:{instance_id}:alive", "1", px=ms(ttl), get=True)
        pipe.hset(f"{self.p}:instances", instance_id, channel)
        previous, _ = await pipe.execute()
        return previous is not None

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove an instance and all its sessions now."""
        await self.client().delete(f"{self.p}:i:{instance_id}:alive")
        return await self._reap(instance_id, only_if_dead=False)

    async def reap_dead_instances(self) -> list[ReapedInstance]:
        """Remove the sessions of every instance whose liveness key expired."""
        reaped = []
        for iid, alive in (await self._liveness()).items():
            if not alive:
                result = await self._reap(iid, only_if_dead=True)
                if result is not None:
                    reaped.append(result)
        return reaped

    async def instance_list(self) -> dict[str, bool]:
        """Registered instances, and whether their liveness key is fresh."""
        return dict(sorted((await self._liveness()).items()))

    async def _liveness(self) -> dict[str, bool]:
        client = self.client()
        instances = await client.hkeys(f"{self.p}:instances")
        return await instances_alive(client, self.p, instances)

    async def _reap(
        self, instance_id: str, *, only_if_dead: bool
    ) -> ReapedInstance | None:
        result = await self.run(REAP, instance_id, flag(only_if_dead))
        if not result:
            return None
        channel, count, offline, rooms = result
        return ReapedInstance(
            instance_id, channel, sorted(rooms), int(count), [int(u) for u in offline]
        )
