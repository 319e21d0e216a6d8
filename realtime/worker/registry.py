"""The worker's jobs, registered by the modules that own them:

    @job("usage", order=10)
    async def usage_expire(*, dry_run: bool) -> list[str]: ...

The core registers its own jobs (realtime/worker/jobs.py); an app registers its jobs
in its own module (notes/jobs.py), imported when the app is ready. A pass runs the
jobs in `order` (lower first); a job with `every` runs at most that often, in the
pass that comes after its time is up.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

JobFunction = Callable[..., Awaitable[list[str]]]


@dataclass(slots=True)
class Job:
    """A registered job; `last_run` is when it last ran in this process."""

    name: str
    run: JobFunction
    order: int
    every: float | None = None
    last_run: float = field(default=float("-inf"))

    def due(self, now: float) -> bool:
        return self.every is None or now - self.last_run >= self.every


_jobs: dict[str, Job] = {}


def job(
    name: str, *, order: int, every: float | None = None
) -> Callable[[JobFunction], JobFunction]:
    """Register a job: `async def f(*, dry_run) -> list of what it did`."""

    def register(function: JobFunction) -> JobFunction:
        known = _jobs.get(name)
        if known is not None and known.run is not function:
            raise RuntimeError(f"worker job {name!r} is registered twice")
        _jobs[name] = Job(name=name, run=function, order=order, every=every)
        return function

    return register


def registered_jobs() -> list[Job]:
    """Every registered job, in pass order."""
    return sorted(_jobs.values(), key=lambda j: (j.order, j.name))


def due_jobs(now: float | None = None) -> list[Job]:
    """The jobs a pass runs now."""
    now = time.monotonic() if now is None else now
    return [j for j in registered_jobs() if j.due(now)]
