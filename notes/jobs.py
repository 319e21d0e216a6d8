"""The notes' cleanup jobs, run by the leading worker (realtime/worker/): sessions
left in document rooms they no longer hold, and compaction of update logs."""

from django.conf import settings
from django.db.models import Count

from notes import services
from notes.models import NoteUpdate
from notes.rooms import DOC_ROOM_PREFIX, doc_room
from realtime.db import background_db
from realtime.state import get_state
from realtime.worker.registry import job

# Notes compacted per pass at most, so one pass stays short.
COMPACT_BATCH = 100


@job("documents", order=30)
async def documents_prune(*, dry_run: bool) -> list[str]:
    """Take sessions out of Yjs documents (doc_* rooms) they no longer hold."""
    state = get_state()
    done = []
    for room in sorted(await state.room_counts()):
        if room.startswith(DOC_ROOM_PREFIX):
            for sid in await state.room_prune(room=room, dry_run=dry_run):
                done.append(f"session {sid} from {room}")
    return done


@job("notes", order=40)
async def notes_compact(*, dry_run: bool) -> list[str]:
    """Compact Yjs documents: a note nobody edits is compacted whenever it has
    updates after its snapshot; an open one only past NOTE_COMPACT_THRESHOLD."""
    prefix = doc_room("note:")
    open_notes = {
        room[len(prefix) :]
        for room in await get_state().room_counts()
        if room.startswith(prefix)
    }
    due = await background_db(_notes_to_compact)(open_notes=open_notes)
    done = []
    for note_id, count in due:
        merged = (
            count if dry_run else await background_db(services.compact)(note_id=note_id)
        )
        if merged:
            done.append(f"note {note_id}: {merged} updates")
    return done


def _notes_to_compact(*, open_notes: set[str]) -> list[tuple[str, int]]:
    """Notes whose log should be merged now, with its length, at most COMPACT_BATCH:
    chosen among all notes with a log (one grouped query), so open notes below the
    threshold never crowd out the others."""
    logs = NoteUpdate.objects.values_list("note_id").annotate(n=Count("id"))
    due = [
        (note_id, n)
        for note_id, n in logs.order_by()
        if note_id not in open_notes or n > settings.NOTE_COMPACT_THRESHOLD
    ]
    return sorted(due, key=lambda item: -item[1])[:COMPACT_BATCH]
