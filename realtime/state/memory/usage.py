"""Model usage in memory: which models sessions are using, with marks that lapse."""

import time

from realtime.state.memory.tables import MemoryTables


class MemoryUsage(MemoryTables):
    """The UsageStore of the memory store."""

    async def usage_mark(self, *, model: str, sid: str, ttl: float) -> bool:
        """Mark that a known session uses a model for the next `ttl` seconds."""
        if sid not in self.sessions:
            return False
        self.usage[(sid, model)] = time.time() + ttl
        return True

    async def usage_models(self) -> dict[str, set[str]]:
        """Models with a live mark, and their sessions."""
        now = time.time()
        models: dict[str, set[str]] = {}
        for (sid, model), expires in self.usage.items():
            if expires > now:
                models.setdefault(model, set()).add(sid)
        return models

    async def usage_expire(self, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Delete expired marks (or only list them)."""
        now = time.time()
        gone = sorted(k for k, expires in self.usage.items() if expires <= now)
        if not dry_run:
            for key in gone:
                del self.usage[key]
        return gone

    async def usage_claim(self, *, interval: float) -> list[str] | None:
        """The models in use if they changed and `interval` passed since the last."""
        models = sorted(await self.usage_models())
        now = time.monotonic()
        if models == self.usage_sent or now - self.usage_last < interval:
            return None
        self.usage_sent = models
        self.usage_last = now
        return models
