"""The cleanup worker: an asyncio loop, led by one process of the fleet at a time.

`base.Worker` holds leadership (an owned, expiring lock in the state store) and runs
every registered job (`registry.job`; the core's in `jobs`, apps' in their own
modules) once per WORKER_INTERVAL while it leads; a failing job is logged and tried
again next pass; a lost lock or a Redis outage never ends the loop.
"""

from realtime.worker import jobs as core_jobs  # noqa: F401 (registers the core jobs)
from realtime.worker.base import LOCK_NAME, JobResult, Worker, run_pass
from realtime.worker.registry import Job, job, registered_jobs

__all__ = [
    "LOCK_NAME",
    "Job",
    "JobResult",
    "Worker",
    "job",
    "registered_jobs",
    "run_pass",
]
