"""Ending the HTTP streams when uvicorn is told to stop.

uvicorn's graceful shutdown closes WebSockets itself (1012, service restart) but
waits for every HTTP response in progress to finish, and a stream never finishes by
itself: without this, a SIGTERM would leave the process up until the client went or
a supervisor killed it, and its lifespan shutdown (which writes what tasks streamed)
would never run. So the first stream of a uvicorn process chains a handler onto
uvicorn's SIGINT/SIGTERM handler that closes every stream with 1012 as well; their
clients reconnect elsewhere and recover (docs/protocol.md §8). daphne drops open
responses at shutdown by itself.
"""

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# What uvicorn sends a WebSocket at shutdown: "service restart", reconnect.
CLOSE_SERVICE_RESTART = 1012
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_watched: set[int] = set()  # ids of the loops whose streams a handler closes


def shutdown_watch(close_all: Callable[[], None]) -> None:
    """Under uvicorn, call `close_all` in this loop when the process is told to stop."""
    loop = asyncio.get_running_loop()
    if (
        "uvicorn.server" not in sys.modules
        or threading.current_thread() is not threading.main_thread()
        or id(loop) in _watched
    ):
        return
    _watched.add(id(loop))
    for sig in SIGNALS:
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous) -> None:
            try:
                loop.call_soon_threadsafe(close_all)
            except RuntimeError:  # that loop is closed: nothing of it to end
                pass
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
