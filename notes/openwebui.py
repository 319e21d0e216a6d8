"""Notes in Open WebUI's dialect (realtime.dialects.OPENWEBUI): its payload shapes,
Yjs bytes as JSON lists of ints, its `data.content` saves, and the frames its editor
reads (docs/protocol.md, "Notes in the openwebui dialect").

Which content wins. Open WebUI's editor sends `data.content` ({md, html, json}) with
its updates, 500 ms after a remote update and when it closes; its server stored that
as the note's content. Those saves race the CRDT: a save rendered from a document
that has not yet received a concurrent edit puts older content back, which is how
edits were lost in Open WebUI (#28539, #25916). Here the Yjs document is the truth:
`md` (the note's `content`) and `json` are derived from the document by the server
whenever it can derive them, and a client's save never replaces them. A writer's save
is kept (bounded by NOTE_CONTENT_MAX_BYTES) only for what the server cannot derive:
`html`, and `json` of a document with no rich-text root. A reader's save is refused.
"""

from typing import Any

import orjson
from django.conf import settings
from pydantic import Field, StrictInt, TypeAdapter, ValidationError

from notes.models import Note, NoteGrant
from realtime.dialects import epoch_ns
from realtime.errors import BAD_REQUEST, EventError
from realtime.events import Payload

# Yjs's encoding of an empty document: no structs, no deletions.
EMPTY_STATE = b"\x00\x00"

# Identity fields are accepted in any JSON type and ignored (identity comes from the
# session): Open WebUI sends a user id, a socket id, a name, a colour.
Ignored = Any


class NoteJoin(Payload):
    note_id: str
    auth: Ignored = None


class DocJoin(Payload):
    document_id: str
    user_id: Ignored = None
    user_name: Ignored = None
    user_color: Ignored = None


class DocRef(Payload):
    document_id: str
    user_id: Ignored = None


class SavedContent(Payload):
    md: str = ""
    html: str = ""
    # ProseMirror JSON ("json" on the wire; the name would shadow BaseModel.json).
    doc: dict | None = Field(None, alias="json")


class NoteData(Payload):
    content: SavedContent


class DocUpdate(Payload):
    document_id: str
    user_id: Ignored = None
    socket_id: Ignored = None
    update: list | None = None  # items checked by int_bytes, after the length
    initialize: bool = False
    data: NoteData | None = None


class AwarenessUpdate(Payload):
    document_id: str
    user_id: Ignored = None
    update: list


# Items of an int list, checked only once its length is known to be within bounds:
# checking 16 MiB of JSON ints item by item would hold the event loop for a second.
_Ints = TypeAdapter(list[StrictInt])


def int_bytes(values: list, *, limit: int, what: str) -> bytes:
    """Open WebUI's `Array.from(uint8array)` back into bytes: bad_request for a list
    longer than `limit` (checked first, so nothing big is converted), or an item
    that is not an integer 0..255 (a bool, a float, a string are refused too)."""
    if len(values) > limit:
        raise EventError(
            BAD_REQUEST, f"{what} is {len(values)} bytes; at most {limit} are accepted"
        )
    try:
        return bytes(_Ints.validate_python(values))
    except (ValidationError, ValueError):
        raise EventError(BAD_REQUEST, f"{what} must be a list of ints 0..255") from None


def update_bytes(values: list[int]) -> bytes:
    """A Yjs update sent as an int list (NOTE_UPDATE_MAX_BYTES at most)."""
    return int_bytes(values, limit=settings.NOTE_UPDATE_MAX_BYTES, what="update")


def awareness_bytes(values: list[int]) -> bytes:
    """Open WebUI's awareness update: UTF-8 JSON of {clientID: state}, as an int
    list (not y-protocols awareness); bad_request unless it is a JSON object."""
    data = int_bytes(values, limit=settings.NOTE_AWARENESS_MAX_BYTES, what="update")
    try:
        state = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise EventError(BAD_REQUEST, "update must be UTF-8 JSON bytes") from None
    if not isinstance(state, dict):
        raise EventError(BAD_REQUEST, "update must be a JSON object")
    return data


def saved_content(data: NoteData | None) -> dict | None:
    """The `data.content` of a save as a dict, within NOTE_CONTENT_MAX_BYTES."""
    if data is None:
        return None
    content = data.content.model_dump(by_alias=True)
    size = len(orjson.dumps(content))
    if size > settings.NOTE_CONTENT_MAX_BYTES:
        raise EventError(
            BAD_REQUEST,
            f"data.content is {size} bytes; at most "
            f"{settings.NOTE_CONTENT_MAX_BYTES} are accepted",
        )
    return content


def content_view(rendered: dict, text: str, json: dict | None) -> dict | None:
    """The {md, html, json} a client gets: what the document gives wins (md always,
    json from a rich-text root), the last writer's save fills in the rest; None for a
    note with neither."""
    if not text and not rendered and json is None:
        return None
    return {
        "md": text,
        "html": rendered.get("html", ""),
        "json": json if json is not None else rendered.get("json"),
    }


def state_frame(document_id: str, state: bytes, content: dict | None) -> dict:
    """`ydoc:document:state` as Open WebUI reads it."""
    return {"document_id": document_id, "state": list(state), "content": content}


def update_frame(document_id: str, update: bytes, sid: str | None, user_id) -> dict:
    """A relayed `ydoc:document:update` as Open WebUI reads it (it skips its own by
    `socket_id`, the sender's session id)."""
    return {
        "document_id": document_id,
        "user_id": user_id,
        "update": list(update),
        "socket_id": sid,
    }


def note_object(*, note: Note, content: dict | None) -> dict:
    """The bare note Open WebUI's `events:note` carries."""
    grants = NoteGrant.objects.filter(note=note).values_list("user_id", "permission")
    return {
        "id": note.id,
        "user_id": note.owner_id,
        "title": note.title,
        # Open WebUI's timestamps are integers in nanoseconds since the epoch.
        "updated_at": epoch_ns(note.updated_at),
        "access_grants": [{"user_id": u, "permission": p} for u, p in grants],
        "data": {"content": content},
    }
