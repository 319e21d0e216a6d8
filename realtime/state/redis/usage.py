"""Model usage in Redis: which models sessions are using, with marks that lapse.

    p:usage              zset    "{sid}|{model}" -> when the mark expires (Unix time)
    p:s:{sid}:usage      set     models the session marked (removed with the session)
    p:usage:sent, :lock  string  last broadcast models, broadcast lock

Marks use this instance's wall clock (time.time()), so instances need synced clocks.
"""

import time

from realtime.state.redis.client import RedisConnection, ms
from realtime.state.redis.scripts import USAGE_CLAIM, USAGE_EXPIRE, USAGE_MARK, flag


class RedisUsage(RedisConnection):
    """The UsageStore of the Redis store."""

    async def usage_mark(self, *, model: str, sid: str, ttl: float) -> bool:
        """Mark that a known session uses a model for the next `ttl` seconds."""
        return await self.run(USAGE_MARK, sid, model, time.time() + ttl) == 1

    async def usage_models(self) -> dict[str, set[str]]:
        """Models with a live mark, and their sessions."""
        live = await self.client().zrangebyscore(
            f"{self.p}:usage", f"({time.time()}", "+inf"
        )
        models: dict[str, set[str]] = {}
        for member in live:
            sid, _, model = member.partition("|")
            models.setdefault(model, set()).add(sid)
        return models

    async def usage_expire(self, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Delete expired marks (or only list them)."""
        gone = await self.run(USAGE_EXPIRE, time.time(), flag(dry_run))
        return sorted(tuple(member.partition("|")[::2]) for member in gone)

    async def usage_claim(self, *, interval: float) -> list[str] | None:
        """The models in use if they changed and this caller may broadcast now."""
        reply = await self.run(USAGE_CLAIM, time.time(), ms(interval))
        return list(reply[1:]) if reply else None
