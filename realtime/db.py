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


def background_db(func):
    """Wrap a sync ORM function to be awaited from a background task."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor)
