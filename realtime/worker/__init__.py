"""The cleanup worker: an asyncio loop, led by one process of the fleet at a time.

`base.Worker` holds leadership (realtime.worker.lock semantics on the state store) and
runs every job of `jobs.JOBS` once per WORKER_INTERVAL while it leads; a failing job is
logged and tried again next pass; a lost lock or a Redis outage never ends the loop.
"""

from realtime.worker.base import LOCK_NAME, JobResult, Worker, run_pass
from realtime.worker.jobs import JOBS

__all__ = ["JOBS", "LOCK_NAME", "JobResult", "Worker", "run_pass"]
