"""Who may read or write a note, and which notes a user sees."""

from django.db.models import Q

from notes.models import Note, NoteGrant
from realtime.errors import FORBIDDEN, NOT_FOUND, EventError

READ, WRITE = "read", "write"


def note_access(*, note: Note, user) -> str | None:
    """The user's access to a note: "write", "read" or None. Owners and admins write."""
    if (
        note.owner_id == user.id
        or getattr(user, "role", "") == "admin"
        or user.is_staff
    ):
        return WRITE
    grant = NoteGrant.objects.filter(note=note, user=user).values_list(
        "permission", flat=True
    )
    return grant.first()


def note_get_for(*, note_id: str, user, need: str = READ) -> Note:
    """A note the user may read (or write); not_found if they may not even read it."""
    note = Note.objects.filter(id=note_id).first()
    access = note_access(note=note, user=user) if note is not None else None
    if access is None:
        raise EventError(NOT_FOUND, "no such note")
    if need == WRITE and access != WRITE:
        raise EventError(FORBIDDEN, "read-only access to this note")
    return note


def note_list_for(*, user) -> list[Note]:
    """Notes the user owns or was granted, most recently changed first."""
    return list(
        Note.objects.filter(Q(owner=user) | Q(grants__user=user))
        .distinct()
        .order_by("-updated_at")
    )
