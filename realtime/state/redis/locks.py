"""Locks in Redis: leader locks and throttles, claims that expire on their own.

p:lock:{name}        string with a TTL: the owner of a leader lock
p:throttle:{key}     string with a TTL
"""

from realtime.state.redis.client import MS_PER_SECOND, RedisConnection, ms
from realtime.state.redis.scripts import LOCK_RELEASE, LOCK_RENEW


class RedisLocks(RedisConnection):
    """The LockStore of the Redis store."""

    async def lock_acquire(self, *, name: str, owner: str, ttl: float) -> bool:
        """SET NX PX: take the lock if nobody holds it."""
        return bool(
            await self.client().set(f"{self.p}:lock:{name}", owner, nx=True, px=ms(ttl))
        )

    async def lock_renew(self, *, name: str, owner: str, ttl: float) -> bool:
        """Extend the lock's expiry if `owner` still holds it."""
        return await self.run(LOCK_RENEW, name, owner, ms(ttl)) == 1

    async def lock_release(self, *, name: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it."""
        return await self.run(LOCK_RELEASE, name, owner) == 1

    async def lock_owner(self, *, name: str) -> tuple[str | None, float]:
        """Who holds the lock and the seconds left before it expires."""
        pipe = self.atomic_pipeline()
        pipe.get(f"{self.p}:lock:{name}")
        pipe.pttl(f"{self.p}:lock:{name}")
        owner, left_ms = await pipe.execute()
        return owner, max(left_ms, 0) / MS_PER_SECOND if owner else 0.0

    async def throttle(self, *, key: str, seconds: float) -> bool:
        """True at most once per `seconds` per key, fleet-wide."""
        return bool(
            await self.client().set(
                f"{self.p}:throttle:{key}", "1", nx=True, px=ms(seconds)
            )
        )
