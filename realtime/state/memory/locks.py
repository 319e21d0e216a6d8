"""Locks in memory: leader locks and throttles, claims that expire on their own."""

import time

from realtime.state.memory.tables import MemoryTables

# Past this many throttle keys, the expired ones are dropped: memory stays bounded
# without a sweep on every call.
THROTTLE_SWEEP_AT = 10_000


class MemoryLocks(MemoryTables):
    """The LockStore of the memory store."""

    def _lock_holder(self, name: str) -> str | None:
        owner, expires = self.locks.get(name, (None, 0.0))
        return owner if expires > time.monotonic() else None

    async def lock_acquire(self, *, name: str, owner: str, ttl: float) -> bool:
        """Take the lock if nobody holds it."""
        if self._lock_holder(name) is not None:
            return False
        self.locks[name] = (owner, time.monotonic() + ttl)
        return True

    async def lock_renew(self, *, name: str, owner: str, ttl: float) -> bool:
        """Extend the lock if `owner` holds it."""
        if self._lock_holder(name) != owner:
            return False
        self.locks[name] = (owner, time.monotonic() + ttl)
        return True

    async def lock_release(self, *, name: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it."""
        if self._lock_holder(name) != owner:
            return False
        del self.locks[name]
        return True

    async def lock_owner(self, *, name: str) -> tuple[str | None, float]:
        """Who holds the lock and the seconds left."""
        owner = self._lock_holder(name)
        left = self.locks[name][1] - time.monotonic() if owner else 0.0
        return owner, left

    async def throttle(self, *, key: str, seconds: float) -> bool:
        """True at most once per `seconds` per key."""
        now = time.monotonic()
        if self.throttles.get(key, float("-inf")) > now:
            return False
        self.throttles[key] = now + seconds
        if len(self.throttles) > THROTTLE_SWEEP_AT:
            self.throttles = {k: t for k, t in self.throttles.items() if t > now}
        return True
