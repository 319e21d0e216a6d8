"""Notes: access, the durable update log, content that follows the document, compaction.

The document of a note is its snapshot plus the updates stored after it. Every update
is stored before it is acknowledged; `content` is rebuilt from the document; compaction
merges the log into the snapshot in one transaction without changing the text.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from notes import crdt
from notes.models import Note, NoteGrant, NoteSnapshot, NoteUpdate
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


def note_create(*, owner, title: str, content: str = "") -> Note:
    """Create a note; its document is seeded from `content` when first opened."""
    return Note.objects.create(owner=owner, title=title or "Untitled", content=content)


def note_grant(*, note: Note, user_id: int, permission: str | None) -> None:
    """Grant read or write to another user, or revoke (permission None)."""
    if permission is None:
        NoteGrant.objects.filter(note=note, user_id=user_id).delete()
    else:
        NoteGrant.objects.update_or_create(
            note=note, user_id=user_id, defaults={"permission": permission}
        )


def document_updates(*, note: Note) -> list[bytes]:
    """The snapshot and the updates after it, seeding the document from `content` for
    a note that has text but no document yet (so no client can overwrite the text with
    an empty document)."""
    with transaction.atomic():
        snapshot = NoteSnapshot.objects.filter(note=note).first()
        after = snapshot.last_update_id if snapshot else 0
        updates = list(
            NoteUpdate.objects.filter(note=note, id__gt=after)
            .order_by("id")
            .values_list("update", flat=True)
        )
        if snapshot is None and not updates and note.content:
            seed = crdt.seed_update(note.content)
            NoteUpdate.objects.create(note=note, update=seed, author=None)
            updates = [seed]
    head = [bytes(snapshot.state)] if snapshot else []
    return head + [bytes(u) for u in updates]


def document_state(*, note: Note) -> bytes:
    """The whole document as one update."""
    return crdt.doc_state(crdt.doc_from(document_updates(note=note)))


def update_store(*, note: Note, update: bytes, author_id: int | None) -> int:
    """Check and store one update durably; returns its sequence number."""
    crdt.update_check(update)
    return NoteUpdate.objects.create(note=note, update=update, author_id=author_id).id


def content_save(*, note_id: str) -> str:
    """Rebuild the note's content from its document and store it."""
    note = Note.objects.get(id=note_id)
    text = crdt.doc_text(crdt.doc_from(document_updates(note=note)))
    Note.objects.filter(id=note_id).update(content=text)
    return text


def content_replace(*, note: Note, content: str, author_id: int) -> bytes:
    """Turn the document's text into `content` (REST edits); returns the update to
    relay to open editors, already stored."""
    doc = crdt.doc_from(document_updates(note=note))
    update = crdt.text_update(doc, content)
    if update:
        update_store(note=note, update=update, author_id=author_id)
    Note.objects.filter(id=note.id).update(content=crdt.doc_text(doc))
    return update


def pending_update_count(*, note_id: str) -> int:
    """Updates stored after the snapshot."""
    snapshot = (
        NoteSnapshot.objects.filter(note_id=note_id)
        .values_list("last_update_id", flat=True)
        .first()
    )
    return NoteUpdate.objects.filter(note_id=note_id, id__gt=snapshot or 0).count()


def compact(*, note_id: str) -> int:
    """Merge the update log into the snapshot in one transaction; returns how many
    updates were merged. The text is unchanged."""
    with transaction.atomic():
        note = Note.objects.select_for_update().get(id=note_id)
        snapshot = NoteSnapshot.objects.filter(note=note).first()
        after = snapshot.last_update_id if snapshot else 0
        rows = list(
            NoteUpdate.objects.filter(note=note, id__gt=after)
            .order_by("id")
            .values_list("id", "update")
        )
        if not rows:
            return 0
        head = [bytes(snapshot.state)] if snapshot else []
        doc = crdt.doc_from(head + [bytes(u) for _, u in rows])
        last = rows[-1][0]
        NoteSnapshot.objects.update_or_create(
            note=note, defaults={"state": crdt.doc_state(doc), "last_update_id": last}
        )
        NoteUpdate.objects.filter(note=note, id__lte=last).delete()
        return len(rows)


def compact_if_needed(*, note_id: str) -> int:
    """Compact when the log grew past NOTE_COMPACT_THRESHOLD."""
    if pending_update_count(note_id=note_id) > settings.NOTE_COMPACT_THRESHOLD:
        return compact(note_id=note_id)
    return 0
