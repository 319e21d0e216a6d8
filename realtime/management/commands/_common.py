"""Shared by the realtime_* commands: run a coroutine on a fresh loop, then close its
Redis connections."""

import asyncio

from django.conf import settings
from django.core.management.base import CommandError

from realtime.state import get_state

EMBEDDED_NOTE = (
    "No REDIS_URL: the embedded server keeps its state in its own process, which this "
    "command cannot see. Use the Django admin of the running server instead."
)


def run(coro):
    """Run a coroutine in its own event loop and release its state connections."""

    async def main():
        try:
            return await coro
        finally:
            await get_state().close()

    return asyncio.run(main())


def fleet_mode() -> bool:
    """Whether state is shared in Redis (else it lives inside the server process)."""
    return bool(
        settings.REDIS_URL or settings.REDIS_SENTINELS or settings.REDIS_CLUSTER
    )


def require_fleet() -> None:
    """Commands that act on live sockets or tasks need the shared Redis."""
    if not fleet_mode():
        raise CommandError(EMBEDDED_NOTE)
