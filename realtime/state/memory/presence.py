"""Presence in memory: who is online, and one coalesced broadcast per change."""

import time

from realtime.state.memory.tables import MemoryTables


class MemoryPresence(MemoryTables):
    """The PresenceStore of the memory store."""

    async def online_user_ids(self) -> set[int]:
        """Users with at least one live session."""
        return set(self.users)

    async def presence_claim(self, *, interval: float) -> bool:
        """True if presence changed since the last broadcast and `interval` passed."""
        now = time.monotonic()
        if (
            self.presence_version == self.presence_sent
            or now - self.presence_last < interval
        ):
            return False
        self.presence_sent = self.presence_version
        self.presence_last = now
        return True
