"""ORM work of background tasks (streams, note saves), off asgiref's thread-sensitive
thread.

Background tasks must not queue on that one thread: a sync view waiting for such a task
(e.g. stopping a generation) occupies it, and the two deadlock (seen in tests). Request
handlers keep using channels' database_sync_to_async.
"""

from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync

BACKGROUND_DB_THREADS = 4
_executor = ThreadPoolExecutor(
    BACKGROUND_DB_THREADS, thread_name_prefix="background-db"
)


def background_db(func, executor: ThreadPoolExecutor | None = None):
    """Wrap a sync ORM function to be awaited from a background task; `executor`
    gives latency-critical work threads (and connections) of its own."""
    return DatabaseSyncToAsync(
        func, thread_sensitive=False, executor=executor or _executor
    )


def dedicated_executor(name: str, threads: int = 1) -> ThreadPoolExecutor:
    """Threads for one kind of work, so it never queues behind the shared pool."""
    return ThreadPoolExecutor(threads, thread_name_prefix=name)
