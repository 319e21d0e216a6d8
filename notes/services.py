"""Notes: creating, sharing and deleting them, the durable update log, content that
follows the document, compaction. (Who may read or write: notes/selectors.py.)

The document of a note is its snapshot plus the updates stored after it. Every update
is stored before it is acknowledged; `content` is rebuilt from the document; compaction
merges the log into the snapshot in one transaction without changing the text.
"""

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from notes import crdt_proxy
from notes.crdt_proxy import shared_host
from notes.models import Note, NoteGrant, NoteSnapshot, NoteUpdate
from notes.openwebui import content_view
from notes.rooms import doc_room, note_room
from realtime import emit
from realtime.errors import BAD_REQUEST, EventError


def _require_text(content: str) -> None:
    """A document's text is Unicode: lone UTF-16 surrogates (which JSON can carry)
    are refused, as the CRDT and PostgreSQL would refuse them."""
    try:
        content.encode()
    except UnicodeEncodeError:
        raise EventError(BAD_REQUEST, "content holds a lone surrogate") from None


def note_create(*, owner, title: str, content: str = "") -> Note:
    """Create a note; its document is seeded from `content` when first opened."""
    _require_text(content)
    return Note.objects.create(owner=owner, title=title or "Untitled", content=content)


def note_grant(*, note: Note, user_id: int, permission: str | None) -> None:
    """Grant read or write to another user, or revoke (permission None). The user's
    open sessions hear of it and leave the document (see _access_changed)."""
    if permission is None:
        NoteGrant.objects.filter(note=note, user_id=user_id).delete()
    else:
        NoteGrant.objects.update_or_create(
            note=note, user_id=user_id, defaults={"permission": permission}
        )
    note_id = note.id
    transaction.on_commit(lambda: _access_changed(note_id, user_id, permission))


def _access_changed(note_id: str, user_id: int, permission: str | None) -> None:
    """A session's access is checked when it joins a document, so after a change the
    user's sessions leave the document (and the note's room if they lost read
    access), the others hear `ydoc:user:left`, and the user's sessions get
    `note:access` with the new permission: a client joins again to go on."""
    document_id = note_room(note_id)
    room = doc_room(document_id)
    was_editing = user_id in emit.room_user_ids_sync(room=room)
    emit.room_leave_for_users_sync(room=room, user_ids=[user_id])
    if permission is None:
        emit.room_leave_for_users_sync(room=note_room(note_id), user_ids=[user_id])
    if was_editing:
        emit.room_emit_sync(
            room=room,
            event="ydoc:user:left",
            data={"document_id": document_id, "user_id": user_id},
        )
    emit.user_emit_sync(
        user_id=user_id,
        event="note:access",
        data={"note_id": note_id, "document_id": document_id, "permission": permission},
    )


def note_delete(*, note: Note) -> None:
    """Delete a note; everyone in its rooms hears `note:deleted` and leaves them."""
    note_id = note.id
    note.delete()
    transaction.on_commit(lambda: _deleted(note_id))


def _deleted(note_id: str) -> None:
    rooms = [note_room(note_id), doc_room(note_room(note_id))]
    for room in rooms:
        users = emit.room_user_ids_sync(room=room)
        emit.room_emit_sync(room=room, event="note:deleted", data={"note_id": note_id})
        if users:
            emit.room_leave_for_users_sync(room=room, user_ids=list(users))


def document_updates(*, note: Note) -> list[bytes]:
    """The snapshot and every update still in the log, seeding the document from
    `content` for a note that has text but no document yet (so no client can
    overwrite the text with an empty document).

    Every remaining update counts, not only those after the snapshot's last id: an
    insert that drew its id before a compaction but committed after it has a lower id
    and was not merged. Applying an update twice changes nothing.
    """
    with transaction.atomic():
        snapshot = NoteSnapshot.objects.filter(note=note).first()
        updates = list(
            NoteUpdate.objects.filter(note=note)
            .order_by("id")
            .values_list("update", flat=True)
        )
        if snapshot is None and not updates and note.content:
            seed = _seed(note.id)
            updates = [seed] if seed else []
    head = [bytes(snapshot.state)] if snapshot else []
    return head + [bytes(u) for u in updates]


def _seed(note_id: str) -> bytes | None:
    """Store the seed update of a note that has content and no document, once: the
    note row is locked and the log checked again (two instances may open it at the
    same moment). Inside a transaction."""
    note = Note.objects.select_for_update().get(id=note_id)
    if NoteUpdate.objects.filter(note=note).exists():
        return None
    if NoteSnapshot.objects.filter(note=note).exists():
        return None
    # Text stored before the check above may hold lone surrogates: seed what shows.
    text = note.content.encode(errors="replace").decode()
    seed = shared_host().call("seed", text)
    if seed:
        NoteUpdate.objects.create(note=note, update=seed, author=None)
    return seed


def document_merged(*, note: Note) -> tuple[bytes, str, int]:
    """(state, text, clock) of the note's document, built from the database."""
    return crdt_proxy.merge(shared_host(), document_updates(note=note))


def documents_fetch(*, known: dict[str, tuple[int | None, set[int]]]) -> dict:
    """What several cached documents lack, in a handful of queries whatever their
    number.

    `known` maps note id -> (snapshot marker the cache holds, update ids it applied).
    Returns note id -> {"marker", "state" (the snapshot, only when its marker
    changed), "ids" (every update id in the log), "updates" [(id, bytes)] (only those
    not applied yet)}; notes that do not exist are left out. Notes with content and no
    document are seeded here.

    The answer is one consistent cut: each statement of a READ COMMITTED transaction
    sees its own moment, so a compaction committed between reading the markers and
    reading the log would hide the updates it merged (gone from the log, and not in a
    snapshot we thought unchanged). The markers are read again at the end, and the
    fetch is repeated when any of them moved; a compaction always moves its note's
    marker (ids are never reused).
    """
    if not known:
        return {}
    for _ in range(FETCH_ATTEMPTS):
        with transaction.atomic():
            result, markers = _documents_read(known)
            if _markers(list(result)) == markers:
                return result
    raise RuntimeError("notes kept compacting while being read")


# A fetch that met a concurrent compaction is repeated; meeting one every time means
# something compacts in a loop.
FETCH_ATTEMPTS = 10


def _markers(ids: list[str]) -> dict[str, int]:
    return dict(
        NoteSnapshot.objects.filter(note_id__in=ids).values_list(
            "note_id", "last_update_id"
        )
    )


def _documents_read(known: dict[str, tuple[int | None, set[int]]]):
    ids = list(known)
    exists = set(Note.objects.filter(id__in=ids).values_list("id", flat=True))
    markers = _markers(ids)
    log: dict[str, list[int]] = {}
    for note_id, update_id in NoteUpdate.objects.filter(note_id__in=ids).values_list(
        "note_id", "id"
    ):
        log.setdefault(note_id, []).append(update_id)
    for note_id in exists - set(markers) - set(log):
        if _seed(note_id):
            log[note_id] = list(
                NoteUpdate.objects.filter(note_id=note_id).values_list("id", flat=True)
            )
    changed = [n for n in exists if markers.get(n) != known[n][0]]
    states = dict(
        NoteSnapshot.objects.filter(note_id__in=changed).values_list("note_id", "state")
    )
    wanted = [i for n in exists for i in log.get(n, ()) if i not in known[n][1]]
    updates: dict[str, list] = {}
    if wanted:
        for update_id, note_id, update in (
            NoteUpdate.objects.filter(id__in=wanted)
            .order_by("id")
            .values_list("id", "note_id", "update")
        ):
            updates.setdefault(note_id, []).append((update_id, bytes(update)))
    result = {
        n: {
            "marker": markers.get(n),
            "state": bytes(states[n]) if n in states else None,
            "ids": set(log.get(n, ())),
            "updates": updates.get(n, []),
        }
        for n in exists
    }
    return result, {n: m for n, m in markers.items() if n in exists}


def update_store(*, note: Note, update: bytes, author_id: int | None) -> int:
    """Store one update made on the server (a REST edit) durably; returns its
    sequence number. Clients' updates take the socket path (notes/documents.py),
    which checks and applies them first."""
    return NoteUpdate.objects.create(note=note, update=update, author_id=author_id).id


def updates_store(*, items: list[tuple[str, bytes, int | None]]) -> list[int | None]:
    """Store checked updates (note id, bytes, author id) in one transaction and one
    multi-row INSERT: the group commit of the socket path. Returns each one's sequence
    number, or None for an update whose note no longer exists."""
    rows = [NoteUpdate(note_id=n, update=u, author_id=a) for n, u, a in items]
    try:
        with transaction.atomic():
            NoteUpdate.objects.bulk_create(rows)
    except IntegrityError:
        # A note (or an author) was deleted meanwhile; rare: store one by one.
        return [
            _store_one(NoteUpdate(note_id=n, update=u, author_id=a))
            for n, u, a in items
        ]
    return [row.id for row in rows]


def _store_one(row: NoteUpdate) -> int | None:
    try:
        with transaction.atomic():
            row.save(force_insert=True)
        return row.id
    except IntegrityError:
        return None


def contents_store(*, contents: dict[str, tuple[str, int]]) -> None:
    """Store notes' content (text, document clock) built from their documents, in one
    transaction and one batched statement; a note whose content came from a bigger
    document keeps it (the condition is in the UPDATE, so it holds under
    concurrency).

    A document's text may hold NUL characters (Yjs takes any string), which
    PostgreSQL text cannot store: in `content`, a plain-text mirror of the document,
    they become U+FFFD. The document itself keeps them."""
    table = connection.ops.quote_name(Note._meta.db_table)
    sql = (
        f"UPDATE {table} SET content = %s, content_clock = %s"
        " WHERE id = %s AND content_clock < %s"
    )
    rows = [
        (text.replace("\x00", "\ufffd"), clock, n, clock)
        for n, (text, clock) in contents.items()
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def content_replace(*, note: Note, content: str, author_id: int) -> bytes:
    """Turn the document's text into `content` (REST edits); returns the update to
    relay to open editors, already stored."""
    _require_text(content)
    try:
        update, text, clock = crdt_proxy.text_update(
            shared_host(), document_updates(note=note), content
        )
    except crdt_proxy.InvalidText as exc:
        raise EventError(BAD_REQUEST, str(exc)) from None
    if update:
        update_store(note=note, update=update, author_id=author_id)
    contents_store(contents={note.id: (text, clock)})
    return update


def rendered_store(*, note_id: str, rendered: dict) -> None:
    """Keep a writer's Open WebUI `data.content` save; it never changes `content`
    or the document (notes/openwebui.py says which wins)."""
    Note.objects.filter(id=note_id).update(rendered=rendered)


def note_content_view(*, note: Note) -> dict | None:
    """The {md, html, json} of a note, derived from its document where the server
    can derive it (notes/openwebui.py)."""
    text, json = crdt_proxy.render(shared_host(), document_updates(note=note))
    return content_view(note.rendered, text, json)


def pending_update_count(*, note_id: str) -> int:
    """Updates not merged into the snapshot yet."""
    return NoteUpdate.objects.filter(note_id=note_id).count()


def compact(*, note_id: str) -> int:
    """Merge the update log into the snapshot in one transaction; returns how many
    updates were merged. The text is unchanged."""
    with transaction.atomic():
        note = Note.objects.select_for_update().get(id=note_id)
        snapshot = NoteSnapshot.objects.filter(note=note).first()
        rows = list(
            NoteUpdate.objects.filter(note=note)
            .order_by("id")
            .values_list("id", "update")
        )
        if not rows:
            return 0
        head = [bytes(snapshot.state)] if snapshot else []
        state, _, _ = crdt_proxy.merge(
            shared_host(crdt_proxy.COMPACTION), head + [bytes(u) for _, u in rows]
        )
        last = rows[-1][0]
        NoteSnapshot.objects.update_or_create(
            note=note, defaults={"state": state, "last_update_id": last}
        )
        # Only the rows read above: while we hold the note's row lock no insert can
        # commit (its foreign-key check waits on the lock), and rows not committed
        # yet are invisible to this delete. A straggler with a lower id stays in the
        # log, and document_updates reads the whole log.
        NoteUpdate.objects.filter(note=note, id__lte=last).delete()
        return len(rows)


def compact_if_needed(*, note_id: str) -> int:
    """Compact when the log grew past NOTE_COMPACT_THRESHOLD."""
    if pending_update_count(note_id=note_id) > settings.NOTE_COMPACT_THRESHOLD:
        return compact(note_id=note_id)
    return 0
