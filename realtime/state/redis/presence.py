"""Presence in Redis: who is online, and one coalesced broadcast per change.

p:online             set     users with a session
p:presence:version   counter bumped when a user comes online or goes offline
p:presence:sent      the version last broadcast
p:presence:lock      string with a TTL: the broadcast interval
"""

from realtime.state.redis.client import RedisConnection, ms
from realtime.state.redis.scripts import PRESENCE_CLAIM


class RedisPresence(RedisConnection):
    """The PresenceStore of the Redis store."""

    async def online_user_ids(self) -> set[int]:
        """Users with at least one live session anywhere."""
        return {int(uid) for uid in await self.client().smembers(f"{self.p}:online")}

    async def presence_claim(self, *, interval: float) -> bool:
        """True if presence changed since the last broadcast and this caller won."""
        return await self.run(PRESENCE_CLAIM, ms(interval)) == 1
