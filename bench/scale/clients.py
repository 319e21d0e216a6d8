"""The measuring side of the scale benchmark: many client sockets in this process,
opened a few at a time, and their frames counted until every client has all it
expects."""

import asyncio

from bench.rawws import RawSocket


async def gather_limited(coros: list, limit: int) -> list:
    """Run coroutines with at most `limit` at a time."""
    semaphore = asyncio.Semaphore(limit)

    async def run(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


def close_all(clients: list[RawSocket]) -> None:
    """Close every client socket."""
    for sock in clients:
        sock.close()


class Arrivals:
    """Frames counted per client, and the moment every client has all it expects.

    The clients' frame callbacks count in `got` themselves and call `complete()`
    once, when their count is reached: nothing is added to the per-frame path,
    which is what sets the measuring side's cost (see bench/rawws.py)."""

    def __init__(self, clients: int) -> None:
        self.got = [0] * clients
        self._pending = clients
        self._done = asyncio.Event()

    def complete(self) -> None:
        """One more client has every frame it expects."""
        self._pending -= 1
        if self._pending == 0:
            self._done.set()

    async def wait(self, timeout: float) -> bool:
        """Whether every client completed within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True
