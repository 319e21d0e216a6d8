"""ORM work of background tasks (streams, note saves), off asgiref's thread-sensitive
thread.

Background tasks must not queue on that one thread: a sync view waiting for such a task
(e.g. stopping a generation) occupies it, and the two deadlock (seen in tests). Request
handlers keep using channels' database_sync_to_async.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.db import connections

BACKGROUND_DB_THREADS = 4
_executor = ThreadPoolExecutor(
    BACKGROUND_DB_THREADS, thread_name_prefix="background-db"
)
# Every pool that holds database connections, for close_connections().
_pools: list[tuple[ThreadPoolExecutor, int]] = [(_executor, BACKGROUND_DB_THREADS)]


def background_db(func, executor: ThreadPoolExecutor | None = None):
    """Wrap a sync ORM function to be awaited from a background task; `executor`
    gives latency-critical work threads (and connections) of its own."""
    return DatabaseSyncToAsync(
        func, thread_sensitive=False, executor=executor or _executor
    )


def dedicated_executor(name: str, threads: int = 1) -> ThreadPoolExecutor:
    """Threads for one kind of work, so it never queues behind the shared pool."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
    _pools.append((pool, threads))
    return pool


def close_connections(timeout: float = 10.0) -> None:
    """Close the database connection of every thread of these pools (a test run's
    end, before the test database is dropped). Each thread runs one closing task:
    a barrier keeps a thread from taking two."""
    for pool, threads in _pools:
        barrier = threading.Barrier(threads)

        def close(barrier=barrier) -> None:
            connections.close_all()
            try:
                barrier.wait(timeout)
            except threading.BrokenBarrierError:
                pass

        futures = [pool.submit(close) for _ in range(threads)]
        for future in futures:
            future.result(timeout * 2)
