"""Background work that belongs to an event loop: one object per loop (asyncio
futures, tasks and timers cannot cross loops; tests run several loops in one
process), and loops that run a step every so often and survive its failures."""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

# Background loops that talk to Redis back off up to this long while it is
# unreachable: long enough not to spin, short enough to notice its return.
MAX_BACKOFF = 10.0


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A function that returns the running loop's object, made by `factory` on first
    use and dropped with the loop."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
        weakref.WeakKeyDictionary()
    )

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            found = made[loop] = factory()
        return found

    get.made = made  # for inspection (tests, shutdown)
    return get


async def every(seconds: float, step: Callable[[], Awaitable[object]], what: str):
    """Run `step` every `seconds` for ever; a failing step is logged (as `what`) and
    the next one runs on time."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)
