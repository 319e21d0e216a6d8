"""The core's cleanup jobs. Each takes `dry_run` and returns one line per thing it
did (or would do); all of them are idempotent, so two leaders overlapping for a
moment (a lock lost mid-pass) repeat work but break nothing. Apps register theirs
in their own modules (notes/jobs.py).

In order: marks first (cheap), then dead instances (which frees rooms), then what
apps clean in rooms (orders 30-49), then task keys.
"""

from realtime.state import get_state
from realtime.worker.registry import job


@job("usage", order=10)
async def usage_expire(*, dry_run: bool) -> list[str]:
    """Delete usage marks that lapsed (reads already ignore them)."""
    gone = await get_state().usage_expire(dry_run=dry_run)
    return [f"usage mark {model} of session {sid}" for sid, model in gone]


@job("instances", order=20)
async def instances_reap(*, dry_run: bool) -> list[str]:
    """Remove the sessions, rooms, routes and tasks of instances whose liveness key
    expired (hubs reap too; the Lua reap is idempotent)."""
    state = get_state()
    if dry_run:
        instances = await state.instance_list()
        return [f"instance {iid}" for iid, alive in instances.items() if not alive]
    return [
        f"instance {r.instance_id}: {r.sessions} sessions, "
        f"{len(r.went_offline)} users offline"
        for r in await state.reap_dead_instances()
    ]


@job("tasks", order=50)
async def tasks_prune(*, dry_run: bool) -> list[str]:
    """Delete task keys left behind: records of instances that are gone, index
    entries without a record."""
    return [f"task {tid}" for tid in await get_state().task_prune(dry_run=dry_run)]
