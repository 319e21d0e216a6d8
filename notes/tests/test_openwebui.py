"""Notes in Open WebUI's dialect: its payload shapes, int-list Yjs, the initialize
flow, content saves, awareness as JSON bytes, events:note, and its bad input."""

import asyncio
import base64

import pytest
from channels.db import database_sync_to_async

from notes import services
from notes.models import Note, NoteUpdate
from notes.yjs_format import awareness_update
from realtime.dialects import OPENWEBUI
from testing.factories import api_for
from testing.rich_editor import RichEditor

pytestmark = pytest.mark.django_db(transaction=True)

EMPTY = [0, 0]


@pytest.fixture
async def people(make_user):
    make = database_sync_to_async(make_user)
    return {n: await make(n) for n in ("owner", "writer", "reader", "stranger")}


@pytest.fixture
async def note(people):
    def create():
        note = services.note_create(owner=people["owner"], title="Plan")
        services.note_grant(note=note, user_id=people["writer"].id, permission="write")
        services.note_grant(note=note, user_id=people["reader"].id, permission="read")
        return note

    return await database_sync_to_async(create)()


def doc(note) -> str:
    return f"note:{note.id}"


async def owui(ws, user):
    return await ws(user, protocol=OPENWEBUI)


async def join(client, note) -> dict:
    """Open WebUI's join (identity fields it sends, no token); the state event."""
    await client.send(
        {
            "event": "ydoc:document:join",
            "data": {
                "document_id": doc(note),
                "user_id": "someone-else",
                "user_name": "Mallory",
                "user_color": "#ff0000",
            },
        }
    )
    return await client.event("ydoc:document:state")


async def silent(client, timeout: float = 0.3) -> bool:
    """Nothing arrives but `ydoc:user:joined`/`left` (sent as Open WebUI's server
    sends them; its editor ignores them)."""
    while not await client.nothing(timeout):
        frame = await client.recv()
        if not frame.get("event", "").startswith("ydoc:user:"):
            return False
    return True


async def updates_stored() -> int:
    return await database_sync_to_async(NoteUpdate.objects.count)()


async def stored(note) -> Note:
    return await database_sync_to_async(Note.objects.get)(pk=note.pk)


async def test_join_gets_the_empty_state_as_an_int_list(ws, people, note):
    w = await owui(ws, people["writer"])
    reply = await w.call("join-note", {"note_id": note.id, "auth": {"token": "x"}})
    assert reply["data"] == {"note_id": note.id}
    assert await join(w, note) == {
        "document_id": doc(note),
        "state": EMPTY,
        "content": None,
    }


async def test_initialize_stores_the_seed_once_then_answers_the_state(ws, people, note):
    w, o = await owui(ws, people["writer"]), await owui(ws, people["owner"])
    await join(w, note)
    await join(o, note)
    seed = RichEditor()
    seed_update = seed.paragraph("Hello")
    frame = {"document_id": doc(note), "update": seed_update, "initialize": True}
    assert (await w.call("ydoc:document:update", frame))["data"] == seed_update
    relayed = await o.event("ydoc:document:update")
    assert relayed["socket_id"] == w.sid and relayed["update"] == seed_update
    # A second seed finds content: it gets the full state and nothing is stored.
    late = RichEditor()
    frame["update"] = late.paragraph("Other seed")
    answer = (await o.call("ydoc:document:update", frame))["data"]
    assert await updates_stored() == 1
    late_doc = RichEditor()
    late_doc.apply(answer)
    assert late_doc.text == "Hello"
    assert await silent(w)


async def test_update_with_content_relays_real_ids_and_derived_content_wins(
    ws, people, note, settings
):
    settings.NOTE_SAVE_DELAY = 0.05
    w, o = await owui(ws, people["writer"]), await owui(ws, people["owner"])
    plain = await ws(people["reader"])  # a realtime-dialect member
    await join(w, note)
    await join(o, note)
    await plain.call("ydoc:document:join", {"document_id": doc(note)})
    editor = RichEditor()
    update = editor.paragraph("Hello ", bold="world")
    frame = {
        "document_id": doc(note),
        "user_id": people["owner"].id,  # spoofed
        "socket_id": o.sid,  # spoofed
        "update": update,
        "data": {"content": {"md": "lies", "html": "<p>Hello</p>", "json": {}}},
    }
    assert "seq" in (await w.call("ydoc:document:update", frame))["data"]
    assert await o.event("ydoc:document:update") == {
        "document_id": doc(note),
        "user_id": people["writer"].id,
        "update": update,
        "socket_id": w.sid,
    }
    relayed = await plain.event("ydoc:document:update")
    assert base64.b64decode(relayed["update"]) == bytes(update)
    assert relayed["session_id"] == w.sid
    for _ in range(100):
        if (await stored(note)).content == "Hello world":
            break
        await asyncio.sleep(0.05)
    row = await stored(note)
    assert row.content == "Hello world"  # from the document, not the client's "lies"
    assert row.rendered["html"] == "<p>Hello</p>"
    # A new joiner's content: md and json derived, html from the save.
    state = await join(await owui(ws, people["owner"]), note)
    assert state["content"]["md"] == "Hello world"
    assert state["content"]["html"] == "<p>Hello</p>"
    assert state["content"]["json"]["content"][0]["type"] == "paragraph"
    joined = RichEditor()
    joined.apply(state["state"])
    assert joined.text == "Hello world"


async def test_content_save_alone_resync_awareness_and_leave(ws, people, note):
    w, o = await owui(ws, people["writer"]), await owui(ws, people["owner"])
    plain = await ws(people["reader"])
    for client in (w, o):
        await join(client, note)
    await plain.call("ydoc:document:join", {"document_id": doc(note)})
    save = {"document_id": doc(note), "data": {"content": {"html": "<p>x</p>"}}}
    assert "error" not in await w.call("ydoc:document:update", save)
    assert (await stored(note)).rendered == {"md": "", "html": "<p>x</p>", "json": None}
    assert await updates_stored() == 0 and await silent(o)
    # Resync.
    await o.send({"event": "ydoc:document:state", "data": {"document_id": doc(note)}})
    state = await o.event("ydoc:document:state")
    assert state["state"] == EMPTY and state["content"]["html"] == "<p>x</p>"
    # Awareness: JSON bytes to Open WebUI members only, as the sender's user.
    cursor = list(b'{"123": {"cursor": null}}')
    frame = {"document_id": doc(note), "user_id": w.sid, "update": cursor}
    await w.send({"event": "ydoc:awareness:update", "data": frame})
    assert await o.event("ydoc:awareness:update") == {
        "document_id": doc(note),
        "user_id": people["writer"].id,
        "update": cursor,
    }
    assert await silent(plain)
    # The realtime dialect's y-protocols awareness does not reach Open WebUI members.
    yprot = base64.b64encode(awareness_update(1, 1, "{}")).decode()
    await plain.call(
        "ydoc:awareness:update", {"document_id": doc(note), "update": yprot}
    )
    assert await silent(o) and await silent(w)
    for bad in (list(b"not json"), list(b"[1]"), [300]):
        frame["update"] = bad
        reply = await w.call("ydoc:awareness:update", frame)
        assert reply["error"]["code"] == "bad_request"
    leave = {"document_id": doc(note), "user_id": 12345}
    assert "error" not in await w.call("ydoc:document:leave", leave)
    reply = await w.call("ydoc:document:update", save)
    assert reply["error"]["code"] == "forbidden"


async def test_rest_changes_send_the_bare_note(ws, people, note):
    o, plain = await owui(ws, people["writer"]), await ws(people["writer"])
    for client in (o, plain):
        assert "data" in await client.call("join-note", {"note_id": note.id})

    def patch():
        return api_for(people["owner"]).patch(
            f"/api/notes/{note.id}/", {"title": "Renamed"}, format="json"
        )

    assert (await database_sync_to_async(patch)()).status_code == 200
    changed = await o.event("events:note")
    assert changed["id"] == note.id and changed["title"] == "Renamed"
    assert isinstance(changed["updated_at"], int)
    assert {"user_id": people["reader"].id, "permission": "read"} in changed[
        "access_grants"
    ]
    assert "content" in changed["data"]
    assert await silent(plain)


# --- Bad input in Open WebUI's shapes -------------------------------------------


async def test_a_note_of_another_user_is_not_found(ws, people, note):
    s = await owui(ws, people["stranger"])
    reply = await s.call("join-note", {"note_id": note.id, "auth": {"token": "t"}})
    assert reply["error"]["code"] == "not_found"
    reply = await s.call("ydoc:document:join", {"document_id": doc(note)})
    assert reply["error"]["code"] == "not_found"
    frame = {"document_id": doc(note), "update": RichEditor().paragraph("x")}
    reply = await s.call("ydoc:document:update", frame)
    assert reply["error"]["code"] == "forbidden"
    assert await updates_stored() == 0


async def test_read_only_users_store_nothing(ws, people, note):
    r = await owui(ws, people["reader"])
    await join(r, note)
    seed = RichEditor().paragraph("mine")
    for frame in (
        {"document_id": doc(note), "update": seed, "initialize": True},
        {"document_id": doc(note), "update": seed},
        {"document_id": doc(note), "data": {"content": {"md": "mine"}}},
    ):
        reply = await r.call("ydoc:document:update", frame)
        assert reply["error"]["code"] == "forbidden", frame
    assert await updates_stored() == 0
    assert (await stored(note)).rendered == {}


@pytest.mark.parametrize(
    "update, message",
    [
        ([0, 256], "update must be a list of ints 0..255"),
        ([0, -1], "update must be a list of ints 0..255"),
        ([1, 2, 3], "not a Yjs update"),
        ("AAA=", "update"),
        ([True, 0], "update must be a list of ints 0..255"),
        ([1.0, 0], "update must be a list of ints 0..255"),
        (["1", 0], "update must be a list of ints 0..255"),
    ],
)
async def test_bad_int_lists_are_refused(ws, people, note, update, message):
    w = await owui(ws, people["writer"])
    await join(w, note)
    reply = await w.call(
        "ydoc:document:update", {"document_id": doc(note), "update": update}
    )
    assert reply["error"]["code"] == "bad_request"
    assert message in reply["error"]["message"]
    assert await updates_stored() == 0


async def test_a_3_mib_update_is_refused_and_the_socket_stays(ws, people, note):
    w = await owui(ws, people["writer"])
    await join(w, note)
    huge = [0] * (3 * 1024 * 1024)
    reply = await w.call(
        "ydoc:document:update", {"document_id": doc(note), "update": huge}
    )
    assert reply["error"]["code"] == "bad_request"
    assert "at most 2097152" in reply["error"]["message"]
    assert await updates_stored() == 0
    frame = {"document_id": doc(note), "update": RichEditor().paragraph("ok")}
    assert "data" in await w.call("ydoc:document:update", frame)


async def test_a_21st_document_is_refused(ws, people):
    def create():
        return [
            services.note_create(owner=people["owner"], title=f"n{i}")
            for i in range(21)
        ]

    many = await database_sync_to_async(create)()
    o = await owui(ws, people["owner"])
    for one in many[:20]:
        reply = await o.call("ydoc:document:join", {"document_id": doc(one)})
        assert "data" in reply, reply
    reply = await o.call("ydoc:document:join", {"document_id": doc(many[20])})
    assert reply["error"] == {
        "code": "bad_request",
        "message": "at most 20 open documents per session; leave one first",
    }
    # Joining one already open again is fine; after a leave there is room.
    assert "data" in await o.call("ydoc:document:join", {"document_id": doc(many[0])})
    await o.call("ydoc:document:leave", {"document_id": doc(many[0])})
    assert "data" in await o.call("ydoc:document:join", {"document_id": doc(many[20])})


async def test_rest_cannot_flatten_a_rich_text_document(ws, people, note):
    o = await owui(ws, people["owner"])
    await join(o, note)
    seed = {"document_id": doc(note), "update": RichEditor().paragraph("Rich")}
    assert "data" in await o.call("ydoc:document:update", seed)

    def patch():
        return api_for(people["owner"]).patch(
            f"/api/notes/{note.id}/", {"content": "flat"}, format="json"
        )

    response = await database_sync_to_async(patch)()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert await updates_stored() == 1
