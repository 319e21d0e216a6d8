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
    prefix = doc_room("note:")
    open_notes = {
        room[len(prefix) :]
        for room in await get_state().room_counts()
        if room.startswith(prefix)
    }
    due = await background_db(_notes_to_compact)(open_notes=open_notes)
    done = []
    for note_id, count in due:
        merged = count if dry_run else await background_db(_compact)(note_id=note_id)
        if merged:
            done.append(f"note {note_id}: {merged} updates")
    return done


def _notes_to_compact(*, open_notes: set[str]) -> list[tuple[str, int]]:
    """Notes whose log should be merged now, with its length, at most COMPACT_BATCH:
    chosen among all notes with a log (one grouped query), so open notes below the
    threshold never crowd out the others."""
    from django.conf import settings
    from django.db.models import Count

    from notes.models import NoteUpdate

    logs = NoteUpdate.objects.values_list("note_id").annotate(n=Count("id"))
    due = [
        (note_id, n)
        for note_id, n in logs.order_by()
        if note_id not in open_notes or n > settings.NOTE_COMPACT_THRESHOLD
    ]
    return sorted(due, key=lambda item: -item[1])[:COMPACT_BATCH]


def _compact(*, note_id: str) -> int:
    from notes import services

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
