"""One object per event loop, for state that belongs to a loop (asyncio futures, tasks
and timers cannot cross loops; tests run several loops in one process)."""

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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
