"""Room names of notes."""

from realtime.rooms import room_kind

# Yjs document rooms start with this (doc_note:{id} for a note's editors).
DOC_ROOM_PREFIX = "doc_"

room_kind("documents", prefix=DOC_ROOM_PREFIX, title="Open documents")


def note_room(note_id: object) -> str:
    """Sessions that joined a note."""
    return f"note:{note_id}"


def doc_room(document_id: object) -> str:
    """Editors of a Yjs document."""
    return f"{DOC_ROOM_PREFIX}{document_id}"
