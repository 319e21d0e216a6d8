"""Socket events of notes: join-note and the ydoc:* events of collaborative editing.

Document ids are "note:{id}"; their editors are in room doc_note:{id}. Identity always
comes from the session. Updates are checked and stored before they are acknowledged and
relayed; a note's content follows its document within NOTE_SAVE_DELAY.

Sockets of the openwebui dialect send and get Yjs bytes as JSON lists of ints, and
their own payload shapes (notes/openwebui.py); each member of a document's room gets
relayed frames in its own dialect.
"""

import base64
import binascii
import hashlib
import logging

from django.conf import settings

from notes import crdt_proxy, selectors, services
from notes import openwebui as owui
from notes.crdt_proxy import Refused
from notes.documents import notes
from notes.rooms import DOC_ROOM_PREFIX, doc_room, note_room
from realtime import emit, events
from realtime.db import background_db
from realtime.dialects import OPENWEBUI, REALTIME
from realtime.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, EventError
from realtime.events import Payload, on
from realtime.hub import get_hub
from realtime.session import per_session

log = logging.getLogger(__name__)

# The update log is checked for compaction every this many updates.
COMPACT_CHECK_EVERY = 25


class NoteRef(Payload):
    note_id: str


class DocRef(Payload):
    document_id: str


class DocUpdate(Payload):
    document_id: str
    update: str  # base64


def _note_id(document_id: str) -> str:
    kind, _, note_id = document_id.partition(":")
    if kind != "note" or not note_id:
        raise EventError(BAD_REQUEST, 'document_id must be "note:{id}"')
    return note_id


async def _note(session, note_id: str, need: str = selectors.READ):
    return await background_db(selectors.note_get_for)(
        note_id=note_id, user=session.user, need=need
    )


# A session's access to the documents it joined, checked at join. A grant change or a
# deletion takes the user's sessions out of the document's room (services.note_grant,
# note_delete), and every use checks membership first, so the cached access is never
# used after such a change: the session has to join again.
_access = per_session(dict)  # document id -> "read" or "write"


def user_color(user_id: int) -> str:
    """A stable colour per user for cursors."""
    digest = hashlib.blake2s(str(user_id).encode(), digest_size=3).hexdigest()
    return f"#{digest}"


def _decode(update: str) -> bytes:
    try:
        data = base64.b64decode(update, validate=True)
    except (binascii.Error, ValueError):
        raise EventError(BAD_REQUEST, "update must be base64") from None
    if len(data) > settings.NOTE_UPDATE_MAX_BYTES:
        raise EventError(
            BAD_REQUEST,
            f"update is {len(data)} bytes; at most "
            f"{settings.NOTE_UPDATE_MAX_BYTES} are accepted",
        )
    return data


def _owui(session) -> bool:
    return session.protocol == OPENWEBUI


@on("join-note", schema=NoteRef, dialects={OPENWEBUI: owui.NoteJoin})
async def join_note(session, payload: NoteRef) -> dict:
    """Enter a note's room (needs read access)."""
    note = await _note(session, payload.note_id)
    await (await get_hub()).join(session, note_room(note.id))
    return {"note_id": note.id}


@on("ydoc:document:join", schema=DocRef, dialects={OPENWEBUI: owui.DocJoin})
async def document_join(session, payload: DocRef) -> dict:
    """Join a document: the joiner gets its state, the others hear who joined."""
    note = await _note(session, _note_id(payload.document_id))
    access = await background_db(selectors.note_access)(note=note, user=session.user)
    room = doc_room(payload.document_id)
    if room not in session.rooms:
        open_now = sum(r.startswith(DOC_ROOM_PREFIX) for r in session.rooms)
        if open_now >= settings.NOTE_MAX_OPEN_DOCUMENTS:
            raise EventError(
                BAD_REQUEST,
                f"at most {settings.NOTE_MAX_OPEN_DOCUMENTS} open documents per "
                "session; leave one first",
            )
    await (await get_hub()).join(session, room)
    _access(session)[payload.document_id] = access
    await _send_state(session, payload.document_id, note)
    await emit.room_emit(
        room=room,
        event="ydoc:user:joined",
        data={
            "document_id": payload.document_id,
            "user_id": session.user_id,
            "user_name": session.user.display_name,
            "user_color": user_color(session.user_id),
        },
        skip_sid=session.sid,
    )
    return {"document_id": payload.document_id}


async def _send_state(session, document_id: str, note) -> None:
    if _owui(session):
        view = await notes().documents.view(note.id)
        if view is None:
            raise EventError(NOT_FOUND, "no such note")
        state, text, json, _ = view
        content = owui.content_view(note.rendered, text, json)
        session.emit(
            "ydoc:document:state", owui.state_frame(document_id, state, content)
        )
        return
    state = await notes().documents.state(note.id)
    if state is None:
        raise EventError(NOT_FOUND, "no such note")
    sessions = await emit.room_sessions(room=doc_room(document_id))
    session.emit(
        "ydoc:document:state",
        {
            "document_id": document_id,
            "state": base64.b64encode(state).decode(),
            "sessions": sessions,
        },
    )


def _require_room(session, document_id: str) -> str:
    room = doc_room(document_id)
    if room not in session.rooms:
        raise EventError(FORBIDDEN, "join the document first")
    return room


@on("ydoc:document:state", schema=DocRef, dialects={OPENWEBUI: owui.DocRef})
async def document_state(session, payload: DocRef) -> None:
    """The state again, for a session in the document."""
    _require_room(session, payload.document_id)
    note = await _note(session, _note_id(payload.document_id))
    await _send_state(session, payload.document_id, note)


@on("ydoc:document:update", schema=DocUpdate, dialects={OPENWEBUI: owui.DocUpdate})
async def document_update(session, payload: DocUpdate):
    """Check, apply, store durably, then relay an update (needs write access). In the
    openwebui dialect also `initialize` and `data.content` saves."""
    room = _require_room(session, payload.document_id)
    if _access(session).get(payload.document_id) != selectors.WRITE:
        raise EventError(FORBIDDEN, "read-only access to this note")
    note_id = _note_id(payload.document_id)
    if _owui(session):
        return await _owui_update(session, payload, room, note_id)
    update = _decode(payload.update)
    seq = await _store(session, note_id, update)
    await _relay(session, payload.document_id, room, update)
    return {"seq": seq}


async def _owui_update(session, payload: owui.DocUpdate, room: str, note_id: str):
    """Open WebUI's four shapes: an update, with or without a content save; a seed
    with `initialize` (answered with the state, or the seed once stored); a content
    save alone. Everything is checked before anything is stored."""
    update = None if payload.update is None else owui.update_bytes(payload.update)
    content = owui.saved_content(payload.data)
    if update is None and (payload.initialize or content is None):
        raise EventError(BAD_REQUEST, "update is required")
    answer = None
    if payload.initialize:
        state = await notes().documents.state(note_id)
        if state is None:
            raise EventError(NOT_FOUND, "no such note")
        if state != owui.EMPTY_STATE:
            return list(state)  # the document has content: the seed is not stored
        answer = payload.update
    if update is not None:
        seq = await _store(session, note_id, update)
        answer = answer if payload.initialize else {"seq": seq}
    if content is not None:
        await background_db(services.rendered_store)(note_id=note_id, rendered=content)
    if update is not None:  # relayed once all of it is stored
        await _relay(session, payload.document_id, room, update)
    return answer


async def _store(session, note_id: str, update: bytes) -> int:
    """Check, apply and store one client update; its sequence number."""
    here = notes()
    try:
        crdt_proxy.update_check(update)
        entry = await here.documents.apply_client(note_id, update)
    except Refused as exc:
        raise EventError(BAD_REQUEST, f"not a Yjs update: {exc}") from None
    except LookupError:
        raise EventError(NOT_FOUND, "no such note") from None
    try:
        seq = await here.writer.store(note_id, update, session.user_id)
    except BaseException:
        await here.documents.forget(note_id)  # applied, not stored: rebuild it
        raise
    if seq is None:
        await here.documents.forget(note_id)
        raise EventError(NOT_FOUND, "no such note")
    here.documents.stored(note_id, seq, entry)
    here.saver.schedule(note_id, compact=seq % COMPACT_CHECK_EVERY == 0)
    return seq


async def _relay(session, document_id: str, room: str, update: bytes) -> None:
    """The others get the update in their own dialect, as the session's user."""
    await emit.room_emit(
        room=room,
        event="ydoc:document:update",
        data={
            "document_id": document_id,
            "update": base64.b64encode(update).decode(),
            "session_id": session.sid,
            "user_id": session.user_id,
        },
        skip_sid=session.sid,
        variants={
            OPENWEBUI: (
                "ydoc:document:update",
                owui.update_frame(document_id, update, session.sid, session.user_id),
            )
        },
    )


@on(
    "ydoc:awareness:update",
    schema=DocUpdate,
    dialects={OPENWEBUI: owui.AwarenessUpdate},
)
async def awareness_update(session, payload: DocUpdate) -> None:
    """Relay cursors and selections to the others, as the session's user. The two
    dialects' awareness formats differ (y-protocols vs JSON bytes), so each goes
    only to members of its own dialect."""
    room = _require_room(session, payload.document_id)
    if _owui(session):
        update = owui.awareness_bytes(payload.update)
        data, variants = (
            {
                "document_id": payload.document_id,
                "user_id": session.user_id,
                "update": list(update),
            },
            {REALTIME: None},
        )
    else:
        update = _decode(payload.update)
        if len(update) > settings.NOTE_AWARENESS_MAX_BYTES:
            raise EventError(BAD_REQUEST, "awareness update too large")
        try:
            crdt_proxy.awareness_check(update)
        except Refused as exc:
            raise EventError(BAD_REQUEST, f"not an awareness update: {exc}") from None
        data, variants = (
            {
                "document_id": payload.document_id,
                "user_id": session.user_id,
                "update": payload.update,
            },
            {OPENWEBUI: None},
        )
    await emit.room_emit(
        room=room,
        event="ydoc:awareness:update",
        data=data,
        skip_sid=session.sid,
        variants=variants,
    )


@on("ydoc:document:leave", schema=DocRef, dialects={OPENWEBUI: owui.DocRef})
async def document_leave(session, payload: DocRef) -> None:
    """Leave a document."""
    await _leave(session, payload.document_id)


@events.on_disconnect
async def leave_documents(session) -> None:
    """A closing socket leaves every document it was in."""
    for room in list(session.rooms):
        if room.startswith("doc_"):
            await _leave(session, room[len("doc_") :])


async def _leave(session, document_id: str) -> None:
    room = doc_room(document_id)
    if room not in session.rooms:
        return
    await (await get_hub()).leave(session, room)
    _access(session).pop(document_id, None)
    await emit.room_emit(
        room=room,
        event="ydoc:user:left",
        data={"document_id": document_id, "user_id": session.user_id},
    )
    if not await emit.room_sessions(room=room):
        # The last editor anywhere left: save now and compact.
        note_id = document_id.partition(":")[2]
        await notes().saver.save([note_id])
        await background_db(services.compact)(note_id=note_id)


async def saves_flush_all() -> None:
    """Write every pending note save now (graceful shutdown)."""
    await notes().saver.flush()
