"""Collaborative notes: access, durable updates, seeding, content sync, compaction."""

import asyncio
import base64

import pycrdt
import pytest
from channels.db import database_sync_to_async

from notes import crdt, crdt_proxy, services
from notes.models import Note, NoteGrant, NoteUpdate
from notes.yjs_format import awareness_update
from testing.factories import api_for

pytestmark = pytest.mark.django_db(transaction=True)


class Editor:
    """A pycrdt client document fed by ydoc:* events."""

    def __init__(self) -> None:
        self.doc = pycrdt.Doc()
        self._text = self.doc.get("content", type=pycrdt.Text)

    def apply_b64(self, data: str) -> None:
        self.doc.apply_update(base64.b64decode(data))

    @property
    def text(self) -> str:
        return str(self._text)

    def insert(self, index: int, chunk: str) -> str:
        before = self.doc.get_state()
        self._text.insert(index, chunk)
        return base64.b64encode(self.doc.get_update(before)).decode()


def awareness_b64(client_id: int, clock: int, state: str) -> str:
    """A y-protocols awareness update for one client, base64."""
    return base64.b64encode(awareness_update(client_id, clock, state)).decode()


@pytest.fixture
async def people(make_user):
    make = database_sync_to_async(make_user)
    return {
        name: await make(name) for name in ("owner", "writer", "reader", "stranger")
    }


@pytest.fixture
async def note(people):
    def create():
        note = services.note_create(
            owner=people["owner"], title="Plan", content="Hello"
        )
        services.note_grant(note=note, user_id=people["writer"].id, permission="write")
        services.note_grant(note=note, user_id=people["reader"].id, permission="read")
        return note

    return await database_sync_to_async(create)()


async def open_doc(client, note) -> Editor:
    document_id = f"note:{note.id}"
    await client.send(
        {"event": "ydoc:document:join", "data": {"document_id": document_id}, "ack": 99}
    )
    state = reply = None
    while state is None or reply is None:  # the state event comes before the ack
        frame = await client.recv()
        if frame.get("ack") == 99:
            reply = frame
        elif frame.get("event") == "ydoc:document:state":
            state = frame["data"]
    assert reply["data"] == {"document_id": document_id}, reply
    editor = Editor()
    editor.apply_b64(state["state"])
    return editor


async def content_of(note) -> str:
    return (await database_sync_to_async(Note.objects.get)(pk=note.pk)).content


async def test_join_seeds_from_content_and_announces(ws, people, note):
    w = await ws(people["writer"])
    editor = await open_doc(w, note)
    assert editor.text == "Hello"  # seeded on the server, not by a client
    r = await ws(people["reader"])
    await open_doc(r, note)
    joined = await w.event("ydoc:user:joined")
    assert joined["user_id"] == people["reader"].id and joined["user_name"] == "Reader"


async def test_update_is_stored_relayed_and_content_follows(ws, people, note, settings):
    settings.NOTE_SAVE_DELAY = 0.1
    w, r = await ws(people["writer"]), await ws(people["reader"])
    writer, reader = await open_doc(w, note), await open_doc(r, note)
    update = writer.insert(5, ", world")
    reply = await w.call(
        "ydoc:document:update", {"document_id": f"note:{note.id}", "update": update}
    )
    assert reply["data"]["seq"] > 0
    relayed = await r.event("ydoc:document:update")
    assert relayed["session_id"] == w.sid and relayed["user_id"] == people["writer"].id
    reader.apply_b64(relayed["update"])
    assert reader.text == "Hello, world"
    for _ in range(50):
        if await content_of(note) == "Hello, world":
            break
        await asyncio.sleep(0.05)
    assert await content_of(note) == "Hello, world"


async def test_read_only_and_strangers_are_refused(ws, people, note):
    r = await ws(people["reader"])
    reader = await open_doc(r, note)
    refused = await r.call(
        "ydoc:document:update",
        {"document_id": f"note:{note.id}", "update": reader.insert(0, "X")},
    )
    assert refused["error"]["code"] == "forbidden"
    s = await ws(people["stranger"])
    for event, data in [
        ("join-note", {"note_id": note.id}),
        ("ydoc:document:join", {"document_id": f"note:{note.id}"}),
    ]:
        assert (await s.call(event, data))["error"]["code"] == "not_found"
    for event in ("ydoc:document:state", "ydoc:awareness:update"):
        data = {"document_id": f"note:{note.id}"}
        if event == "ydoc:awareness:update":
            data["update"] = base64.b64encode(b"x").decode()
        assert (await s.call(event, data))["error"]["code"] == "forbidden"
    count = await database_sync_to_async(NoteUpdate.objects.count)()
    assert count == 1  # only the server's seed


@pytest.mark.parametrize(
    "update, code",
    [
        ("not base64!", "bad_request"),
        (base64.b64encode(b"\x00garbage\xff").decode(), "bad_request"),
    ],
)
async def test_corrupt_updates_are_refused_and_not_stored(
    ws, people, note, update, code
):
    w = await ws(people["writer"])
    await open_doc(w, note)
    reply = await w.call(
        "ydoc:document:update", {"document_id": f"note:{note.id}", "update": update}
    )
    assert reply["error"]["code"] == code
    assert await database_sync_to_async(NoteUpdate.objects.count)() == 1
    assert "data" in await w.call(
        "ydoc:document:state", {"document_id": f"note:{note.id}"}
    )


async def test_awareness_carries_the_sessions_user(ws, people, note):
    w, r = await ws(people["writer"]), await ws(people["reader"])
    await open_doc(w, note)
    await open_doc(r, note)
    payload = awareness_b64(1234, 1, '{"cursor": {"anchor": 3}}')
    frame = {"document_id": f"note:{note.id}", "update": payload, "user_id": 999}
    assert (await r.call("ydoc:awareness:update", frame))["error"][
        "code"
    ] == "bad_request"
    del frame["user_id"]
    await r.call("ydoc:awareness:update", frame)
    relayed = await w.event("ydoc:awareness:update")
    assert relayed == {
        "document_id": f"note:{note.id}",
        "user_id": people["reader"].id,
        "update": payload,
    }


async def test_rest_edit_reaches_open_editors(ws, people, note):
    w = await ws(people["writer"])
    editor = await open_doc(w, note)

    def patch():
        return api_for(people["owner"]).patch(
            f"/api/notes/{note.id}/", {"content": "Hello there"}, format="json"
        )

    response = await database_sync_to_async(patch)()
    assert response.status_code == 200 and response.json()["content"] == "Hello there"
    relayed = await w.event("ydoc:document:update")
    editor.apply_b64(relayed["update"])
    assert editor.text == "Hello there"
    # This process's cached document has not seen that update yet: a join reads it.
    later = await open_doc(await ws(people["reader"]), note)
    assert later.text == "Hello there"


async def test_grant_changes_reach_open_sessions(ws, people, note):
    document_id = f"note:{note.id}"
    w, r = await ws(people["writer"]), await ws(people["reader"])
    writer = await open_doc(w, note)
    await open_doc(r, note)

    def share(permission):
        return api_for(people["owner"]).post(
            f"/api/notes/{note.id}/share/",
            {"user_id": people["writer"].id, "permission": permission},
            format="json",
        )

    assert (await database_sync_to_async(share)("read")).status_code == 200
    access = await w.event("note:access")
    assert access == {
        "note_id": note.id,
        "document_id": document_id,
        "permission": "read",
    }
    left = await r.event("ydoc:user:left")
    assert left == {"document_id": document_id, "user_id": people["writer"].id}
    update = {"document_id": document_id, "update": writer.insert(0, "X")}
    refused = await w.call("ydoc:document:update", update)
    assert refused["error"]["code"] == "forbidden"  # out of the document
    await open_doc(w, note)  # joins again, now read-only
    refused = await w.call("ydoc:document:update", update)
    assert refused["error"] == {
        "code": "forbidden",
        "message": "read-only access to this note",
    }
    assert (await database_sync_to_async(share)("none")).status_code == 200
    assert (await w.event("note:access"))["permission"] is None
    rejoin = await w.call("ydoc:document:join", {"document_id": document_id})
    assert rejoin["error"]["code"] == "not_found"
    assert await database_sync_to_async(NoteUpdate.objects.count)() == 1


async def test_deleting_a_note_tells_its_editors(ws, people, note):
    w = await ws(people["writer"])
    writer = await open_doc(w, note)

    def delete():
        return api_for(people["owner"]).delete(f"/api/notes/{note.id}/")

    assert (await database_sync_to_async(delete)()).status_code == 204
    assert await w.event("note:deleted") == {"note_id": note.id}
    update = {"document_id": f"note:{note.id}", "update": writer.insert(0, "X")}
    assert (await w.call("ydoc:document:update", update))["error"]["code"] == (
        "forbidden"
    )


async def test_leave_announces_and_last_leave_saves_and_compacts(
    ws, people, note, settings
):
    settings.NOTE_SAVE_DELAY = 30  # only the last leave can save in time
    w, r = await ws(people["writer"]), await ws(people["reader"])
    writer = await open_doc(w, note)
    await open_doc(r, note)
    for i in range(5):
        await w.call(
            "ydoc:document:update",
            {"document_id": f"note:{note.id}", "update": writer.insert(0, str(i))},
        )
    await r.call("ydoc:document:leave", {"document_id": f"note:{note.id}"})
    left = await w.event("ydoc:user:left")
    assert left["user_id"] == people["reader"].id
    await w.close()  # the last editor
    await asyncio.sleep(0.3)
    assert await content_of(note) == "43210Hello"
    assert (
        await database_sync_to_async(services.pending_update_count)(note_id=note.id)
        == 0
    )


async def test_compaction_keeps_content_and_join_cost_flat(people, note):
    def write_many():
        editor = crdt.doc_from(services.document_updates(note=note))
        for i in range(300):
            update = crdt.text_update(editor, crdt.doc_text(editor) + str(i % 10))
            services.update_store(note=note, update=update, author_id=None)
        before = crdt.doc_text(crdt.doc_from(services.document_updates(note=note)))
        merged = services.compact(note_id=note.id)
        after_updates = services.document_updates(note=note)
        return before, merged, after_updates

    before, merged, after_updates = await database_sync_to_async(write_many)()
    assert merged == 301 and len(after_updates) == 1  # one snapshot, no log
    assert crdt.doc_text(crdt.doc_from(after_updates)) == before


def test_an_update_committed_after_a_compaction_still_counts(people, note):
    # An insert can draw its id before a compaction and commit after it: its id is
    # below the snapshot's last one, and it was not merged. It must still count.
    doc = crdt.doc_from(services.document_updates(note=note))
    services.update_store(
        note=note, update=crdt.text_update(doc, "Hello!"), author_id=None
    )
    straggler = crdt.text_update(doc, "Hello!?")
    first_id = NoteUpdate.objects.order_by("id").first().id
    services.compact(note_id=note.id)
    NoteUpdate.objects.create(id=first_id, note=note, update=straggler, author=None)
    assert note.snapshot.last_update_id > first_id
    text = crdt.doc_text(crdt.doc_from(services.document_updates(note=note)))
    assert text == "Hello!?"
    fetched = services.documents_fetch(known={note.id: (None, set())})[note.id]
    cached = crdt.doc_from([fetched["state"]] + [u for _, u in fetched["updates"]])
    assert crdt.doc_text(cached) == "Hello!?"


def test_group_commit_stores_all_and_skips_a_deleted_note(people, note):
    other = services.note_create(owner=people["owner"], title="Gone")
    update = crdt.seed_update("x")
    items = [(note.id, update, None), (other.id, update, None)]
    first = services.updates_store(items=items)
    assert all(isinstance(seq, int) for seq in first) and first[0] < first[1]
    other.delete()
    again = services.updates_store(items=items)
    assert again[1] is None and again[0] > first[1]
    assert NoteUpdate.objects.filter(note=note).count() == 2  # one per call


def test_content_with_a_nul_character_is_stored(people, note):
    # Yjs text may hold NUL; PostgreSQL text may not: content gets U+FFFD instead.
    services.contents_store(contents={note.id: ("a\x00b", 10)})
    assert Note.objects.get(id=note.id).content == "a\ufffdb"


def test_older_content_never_replaces_newer(people, note):
    services.contents_store(contents={note.id: ("newer text", 10)})
    services.contents_store(contents={note.id: ("older", 5)})
    assert Note.objects.get(id=note.id).content == "newer text"
    services.contents_store(contents={note.id: ("newest", 11)})
    assert Note.objects.get(id=note.id).content == "newest"


def test_update_check_refuses_garbage():
    with pytest.raises(crdt_proxy.Refused):
        crdt_proxy.update_check(b"\x00garbage\xff\xff")
    crdt_proxy.update_check(crdt.seed_update("ok"))


def test_rest_access_rules(people):
    owner, writer, reader, stranger = (
        people[k] for k in ("owner", "writer", "reader", "stranger")
    )
    api = api_for(owner)
    created = api.post(
        "/api/notes/", {"title": "T", "content": "c"}, format="json"
    ).json()
    nid = created["id"]
    for user, perm in ((writer, "write"), (reader, "read")):
        assert (
            api.post(
                f"/api/notes/{nid}/share/",
                {"user_id": user.id, "permission": perm},
                format="json",
            ).status_code
            == 200
        )
    assert [n["access"] for n in api_for(reader).get("/api/notes/").json()] == ["read"]
    assert api_for(stranger).get(f"/api/notes/{nid}/").status_code == 404
    assert (
        api_for(reader)
        .patch(f"/api/notes/{nid}/", {"title": "x"}, format="json")
        .status_code
        == 403
    )
    assert (
        api_for(writer)
        .patch(f"/api/notes/{nid}/", {"title": "W"}, format="json")
        .status_code
        == 200
    )
    assert api_for(writer).delete(f"/api/notes/{nid}/").status_code == 403
    assert (
        api_for(writer)
        .post(
            f"/api/notes/{nid}/share/",
            {"user_id": stranger.id, "permission": "write"},
            format="json",
        )
        .status_code
        == 403
    )
    assert api.post(
        f"/api/notes/{nid}/share/",
        {"user_id": reader.id, "permission": "none"},
        format="json",
    ).json()["grants"] == {str(writer.id): "write"}
    assert api_for(reader).get(f"/api/notes/{nid}/").status_code == 404
    assert api.delete(f"/api/notes/{nid}/").status_code == 204
    assert NoteGrant.objects.count() == 0


async def test_editing_goes_on_when_the_crdt_host_dies(ws, people, note):
    """The process that holds the documents is killed from outside between two
    updates: the next update is not blamed for it, the document is rebuilt from the
    database, and joiners get the whole text."""
    import os
    import signal

    from notes.documents import notes

    w = await ws(people["writer"])
    writer = await open_doc(w, note)
    document_id = f"note:{note.id}"
    first = await w.call(
        "ydoc:document:update",
        {"document_id": document_id, "update": writer.insert(5, " there")},
    )
    assert "data" in first
    host = notes().host
    generation = host.generation
    os.kill(await host.run("ping"), signal.SIGKILL)
    second = await w.call(
        "ydoc:document:update",
        {"document_id": document_id, "update": writer.insert(11, "!")},
    )
    assert "data" in second, second
    assert host.generation == generation + 1
    r = await ws(people["reader"])
    assert (await open_doc(r, note)).text == "Hello there!"
