"""The worker loop: leadership through an owned, expiring lock, then cleanup passes.

Leadership: `lock_acquire` is SET NX with an expiry of WORKER_LOCK_TIMEOUT; the leader
renews it every half timeout (only if it still owns it) and releases it on stop (only
if it owns it). A follower that finds the lock taken sleeps until it would expire (at
most half a timeout), so when a leader dies another takes over within one timeout of
its last renewal. Nothing here ever ends the loop but `stop()`: every error is logged
and retried with backoff (up to MAX_BACKOFF), for ever. The jobs are those registered
with `@job` (realtime/worker/registry.py).
"""

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings

from realtime import metrics
from realtime.loops import MAX_BACKOFF
from realtime.state import get_state
from realtime.worker.registry import due_jobs

log = logging.getLogger(__name__)

# The one lock every worker of the fleet competes for.
LOCK_NAME = "worker:leader"
# Errors (Redis down, a lost lock) are retried after a backoff that starts here and
# grows to MAX_BACKOFF.
RETRY_FIRST = 0.1
# A follower polls the lock at least this often (seconds), so a released lock is
# taken at once-ish even when its owner said nothing.
MIN_POLL = 0.02


@dataclass(slots=True)
class JobResult:
    """What one job did (or, in a dry run, would do) in one pass."""

    job: str
    count: int = 0
    details: list[str] = field(default_factory=list)
    error: str | None = None


async def run_pass(*, dry_run: bool = False, leading=None) -> list[JobResult]:
    """Run every job once; a failing job is logged with its context and the pass goes
    on. `leading()` is checked between jobs: a worker that lost the lock stops."""
    results = []
    for job in due_jobs():
        name = job.name
        if leading is not None and not leading():
            break
        started = time.monotonic()
        if not dry_run:
            job.last_run = started
        try:
            details = await job.run(dry_run=dry_run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.JOB_FAILURES.labels(name).inc()
            log.exception(
                "worker job %s failed (dry_run=%s, after %.2fs); retried next pass",
                name,
                dry_run,
                time.monotonic() - started,
            )
            results.append(JobResult(job=name, error=f"{type(exc).__name__}: {exc}"))
            continue
        finally:
            if not dry_run:
                metrics.JOB_RUNS.labels(name).inc()
        if details and not dry_run:
            log.info("worker job %s: %d done", name, len(details))
        results.append(JobResult(job=name, count=len(details), details=details))
    return results


class Worker:
    """One competitor for the leader lock; runs cleanup passes while it leads."""

    def __init__(
        self,
        *,
        interval: float | None = None,
        lock_timeout: float | None = None,
        owner: str | None = None,
    ) -> None:
        self.interval = settings.WORKER_INTERVAL if interval is None else interval
        self.lock_timeout = (
            settings.WORKER_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        )
        self.owner = owner or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.leader = False
        self.passes = 0
        self._stopping = asyncio.Event()
        self._renewer: asyncio.Task | None = None

    def stop(self) -> None:
        """Ask the loop to end (it releases the lock if it holds it)."""
        self._stopping.set()

    async def run(self) -> None:
        """Compete for leadership and clean up while leading, until stop()."""
        backoff = RETRY_FIRST
        log.info("worker %s started", self.owner)
        try:
            while not self._stopping.is_set():
                try:
                    if not self.leader:
                        wait = await self._try_lead()
                        if not self.leader:
                            await self._sleep(wait)
                            continue
                    await run_pass(leading=lambda: self.leader)
                    self.passes += 1
                    backoff = RETRY_FIRST
                    await self._sleep(self.interval)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "worker %s: %s: %s; retrying in %.1fs",
                        self.owner,
                        type(exc).__name__,
                        exc,
                        backoff,
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            await self._resign()
            log.info("worker %s stopped", self.owner)

    async def _try_lead(self) -> float:
        state = get_state()
        if await state.lock_acquire(
            name=LOCK_NAME, owner=self.owner, ttl=self.lock_timeout
        ):
            self._set_leader(True)
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew(), name="worker-renew"
            )
            return 0.0
        owner, left = await state.lock_owner(name=LOCK_NAME)
        if owner == self.owner and await state.lock_renew(
            name=LOCK_NAME, owner=self.owner, ttl=self.lock_timeout
        ):
            # Still ours (renewals failed while Redis was away, the key survived).
            self._set_leader(True)
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew(), name="worker-renew"
            )
            return 0.0
        return min(max(left, MIN_POLL), self.lock_timeout / 2)

    async def _renew(self) -> None:
        # Renew at half the timeout; while Redis fails, retry more often, and give up
        # leadership once the lock must have expired (another may hold it by then).
        last_renewed = time.monotonic()
        delay = self.lock_timeout / 2
        state = get_state()
        while self.leader:
            await asyncio.sleep(delay)
            try:
                renewed = await state.lock_renew(
                    name=LOCK_NAME, owner=self.owner, ttl=self.lock_timeout
                )
            except Exception as exc:
                if time.monotonic() - last_renewed >= self.lock_timeout:
                    log.warning("worker %s lost the lock: %s", self.owner, exc)
                    self._set_leader(False)
                    return
                log.warning("worker %s could not renew the lock: %s", self.owner, exc)
                delay = self.lock_timeout / 10
                continue
            if not renewed:
                log.warning("worker %s lost the lock to another worker", self.owner)
                self._set_leader(False)
                return
            last_renewed = time.monotonic()
            delay = self.lock_timeout / 2

    async def _resign(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.leader:
            self._set_leader(False)
            try:
                await get_state().lock_release(name=LOCK_NAME, owner=self.owner)
            except Exception as exc:
                log.warning("worker %s could not release the lock: %s", self.owner, exc)

    def _set_leader(self, leading: bool) -> None:
        if leading == self.leader:
            return
        self.leader = leading
        metrics.LEADER.set(1 if leading else 0)
        metrics.LEADERSHIP_CHANGES.labels("gained" if leading else "lost").inc()
        log.info(
            "worker %s %s leadership", self.owner, "took" if leading else "gave up"
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0))
        except TimeoutError:
            pass
