"""Typing spells: a socket typing in a channel (or a thread of one), timed out on the
server, since Open WebUI's front end sends `typing: true` while its user types and
never `false`."""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from channels_app.models import Channel

log = logging.getLogger(__name__)

# Emits started by timers, held until they end (a bare task could be collected).
_running: set[asyncio.Task] = set()


@dataclass
class Spell:
    """One socket typing in one place: when it was last relayed, and the timer that
    ends it when no refresh comes."""

    channel: Channel
    relayed_at: float = float("-inf")
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def arm(self, seconds: float, expire: Callable[[], None]) -> None:
        """(Re)start the timeout: `expire` runs `seconds` after the last refresh."""
        self.disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, expire)

    def disarm(self) -> None:
        """Stop the timeout (the typist stopped, or left)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def relay_due(self, interval: float) -> bool:
        """True (and noted) if the room last heard of this spell `interval` ago."""
        now = time.monotonic()
        if now - self.relayed_at < interval:
            return False
        self.relayed_at = now
        return True


def spawn(coro: Coroutine) -> None:
    """Run an emit from a timer callback, logging a failure instead of losing it."""
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("typing timeout emit failed", exc_info=task.exception())
