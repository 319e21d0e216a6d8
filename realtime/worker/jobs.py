"""The cleanup jobs. Each takes `dry_run` and returns one line per thing it did (or
would do); all of them are idempotent, so two leaders overlapping for a moment (a
lock lost mid-pass) repeat work but break nothing."""

from django.apps import apps

from realtime.db import background_db
from realtime.rooms import doc_room
from realtime.state import get_state

# Notes compacted per pass at most, so one pass stays short.
COMPACT_BATCH = 100


async def usage_expire(*, dry_run: bool) -> list[str]:
    """Delete usage marks that lapsed (reads already ignore them)."""
    gone = await get_state().usage_expire(dry_run=dry_run)
    return [f"usage mark {model} of session {sid}" for sid, model in gone]


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


async def documents_prune(*, dry_run: bool) -> list[str]:
    """Take sessions out of Yjs documents (doc_* rooms) they no longer hold."""
    state = get_state()
    done = []
    for room in sorted(await state.room_counts()):
        if room.startswith(doc_room("")):
            for sid in await state.room_prune(room=room, dry_run=dry_run):
                done.append(f"session {sid} from {room}")
    return done


async def notes_compact(*, dry_run: bool) -> list[str]:
    """Compact Yjs documents: a note nobody edits is compacted whenever it has
    updates after its snapshot; an open one only past NOTE_COMPACT_THRESHOLD."""
    if not apps.is_installed("notes"):
        return []
    state = get_state()
    pending = await background_db(_notes_with_updates)()
    open_rooms = set(await state.room_counts())
    done = []
    for note_id in pending:
        is_open = doc_room(f"note:{note_id}") in open_rooms
        merged = await background_db(_compact)(
            note_id=note_id, is_open=is_open, dry_run=dry_run
        )
        if merged:
            done.append(f"note {note_id}: {merged} updates")
    return done


def _notes_with_updates() -> list[str]:
    from notes.models import NoteUpdate

    return list(
        NoteUpdate.objects.order_by("note_id")
        .values_list("note_id", flat=True)
        .distinct()[:COMPACT_BATCH]
    )


def _compact(*, note_id: str, is_open: bool, dry_run: bool) -> int:
    from django.conf import settings

    from notes import services

    if dry_run:
        count = services.pending_update_count(note_id=note_id)
        return count if not is_open or count > settings.NOTE_COMPACT_THRESHOLD else 0
    if is_open:
        return services.compact_if_needed(note_id=note_id)
    return services.compact(note_id=note_id)


async def tasks_prune(*, dry_run: bool) -> list[str]:
    """Delete task keys left behind: records of instances that are gone, index
    entries without a record."""
    return [f"task {tid}" for tid in await get_state().task_prune(dry_run=dry_run)]


# In order: marks first (cheap), then dead instances (which frees rooms), then rooms.
JOBS = [
    ("usage", usage_expire),
    ("instances", instances_reap),
    ("documents", documents_prune),
    ("notes", notes_compact),
    ("tasks", tasks_prune),
]
