"""Notes on two real server processes (daphne and uvicorn) sharing the real Redis and
the test database: every editor, every new joiner's state and the stored content agree,
whichever instance an edit or a join goes through.

Each test compares three things: the text of every open editor, the text of the state
each new joiner received (it must hold every update acknowledged anywhere before the
join began), and the note's stored content.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from notes.models import NoteSnapshot, NoteUpdate
from testing.editors import RemoteEditor, converged, stored_content
from testing.factories import note_shared, users_create

# The cross-instance suite runs on one Redis and again on a Redis Cluster.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.also_on_redis_cluster,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
async def team():
    return await users_create("alice", "bob", "carol", "dave")


async def close_all(*editors: RemoteEditor) -> None:
    for editor in editors:
        await editor.close()


async def test_concurrent_editors_on_two_instances_converge(cluster, team):
    one, two = cluster
    alice, bob = team[:2]
    note_id = await note_shared(alice, [bob], content="start")
    a = await RemoteEditor.open(one.ws, alice, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    assert a.joined_text == b.joined_text == "start"
    # Both type at once, without waiting for each other's updates.
    await asyncio.gather(
        *(a.insert(0, f"a{i} ") for i in range(20)),
        *(b.insert(10_000, f" b{i}") for i in range(20)),
    )
    text = await converged([a, b])
    assert all(f"a{i} " in text and f" b{i}" in text for i in range(20))
    assert await stored_content(one, note_id, alice, text) == text
    await close_all(a, b)


async def test_joiners_on_either_instance_after_interleaved_edits(cluster, team):
    """The reported case: bob (instance 2) types, alice (instance 1) inserts inside
    his text, and joiners on both instances get the merged document."""
    one, two = cluster
    alice, bob, carol, dave = team
    note_id = await note_shared(alice, [bob, carol, dave])
    a = await RemoteEditor.open(one.ws, alice, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    await b.type("Greetings")
    assert await converged([a, b]) == "Greetings"
    await a.insert(5, "[a]")
    assert await converged([a, b]) == "Greet[a]ings"
    # More rounds, each from the other instance, into the other's latest text.
    await b.insert(len("Greet[a]"), "[b]")
    await converged([a, b])
    await a.insert(0, ">")
    await b.type("!")
    await a.insert(3, "~")
    text = await converged([a, b])
    assert text == ">Gr~eet[a][b]ings!"
    c = await RemoteEditor.open(one.ws, carol, note_id)  # the stale instance
    d = await RemoteEditor.open(two.ws, dave, note_id)
    assert (c.joined_text, d.joined_text) == (text, text)
    # The joiners edit too, and everyone stays together.
    await c.insert(1, "c")
    await d.type("d")
    text = await converged([a, b, c, d])
    assert text == ">cGr~eet[a][b]ings!d"
    assert await stored_content(one, note_id, alice, text) == text
    await close_all(a, b, c, d)


async def test_third_editor_joining_mid_session_sees_every_acked_update(cluster, team):
    one, two = cluster
    alice, bob, carol = team[:3]
    note_id = await note_shared(alice, [bob, carol], content="0")
    a = await RemoteEditor.open(one.ws, alice, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    acked: list[str] = []
    stop = asyncio.Event()

    async def keep_typing(editor: RemoteEditor, name: str) -> None:
        i = 0
        while not stop.is_set():
            token = f"<{name}{i}>"
            # Insert near the middle of what this editor sees, between two tokens:
            # inside the other instance's text, so its updates depend on the other's.
            text = editor.text
            end = text.find(">", len(text) // 2)
            await editor.insert(end + 1 if end >= 0 else len(text), token)
            acked.append(token)
            i += 1
            await asyncio.sleep(0.02)  # well under FRAME_RATE

    typists = [
        asyncio.ensure_future(keep_typing(a, "a")),
        asyncio.ensure_future(keep_typing(b, "b")),
    ]
    await asyncio.sleep(0.5)
    for joiner_server in (one, two):
        before = list(acked)  # acknowledged before this join began
        c = await RemoteEditor.open(joiner_server.ws, carol, note_id)
        missing = [t for t in before if t not in c.joined_text]
        assert missing == [], f"state lacks acked updates {missing}"
        await c.insert(0, "[c]")
        await asyncio.sleep(0.3)
        if joiner_server is one:
            await c.close()
    stop.set()
    await asyncio.gather(*typists)
    text = await converged([a, b, c])
    assert all(t in text for t in acked) and "[c]" in text
    assert await stored_content(two, note_id, alice, text) == text
    await close_all(a, b, c)


async def test_instance_whose_cache_holds_an_earlier_session(cluster, team):
    """Instance 1 keeps the document in memory after its editors left; a later
    session that edits through instance 2 must not be hidden by that cache."""
    one, two = cluster
    alice, bob, carol = team[:3]
    note_id = await note_shared(alice, [bob, carol])
    # Session 1: through instance 1 only; everyone leaves (saved, compacted).
    a = await RemoteEditor.open(one.ws, alice, note_id)
    await a.type("first ")
    await a.close()
    assert await stored_content(one, note_id, alice, "first ") == "first "
    # Session 2: bob types through instance 2, alice inserts inside it through
    # instance 1, whose cache still holds session 1.
    b = await RemoteEditor.open(two.ws, bob, note_id)
    assert b.joined_text == "first "
    await b.type("second")
    a = await RemoteEditor.open(one.ws, alice, note_id)
    assert a.joined_text == "first second"
    await a.insert(len("first sec"), "[a]")
    text = await converged([a, b])
    assert text == "first sec[a]ond"
    await b.close()
    await a.close()
    # Session 3: a joiner on each instance.
    c = await RemoteEditor.open(one.ws, carol, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    assert (c.joined_text, b.joined_text) == (text, text)
    assert await stored_content(two, note_id, alice, text) == text
    await close_all(b, c)


async def test_compaction_on_the_other_instance_between_two_joins(cluster, team):
    one, two = cluster
    alice, bob, carol, dave = team
    note_id = await note_shared(alice, [bob, carol, dave], content="base")
    a = await RemoteEditor.open(one.ws, alice, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    await a.insert(4, "-a1")
    await b.insert(0, "b1-")
    text = await converged([a, b])
    # First join on instance 1: its cache now holds the document and the log ids.
    c = await RemoteEditor.open(one.ws, carol, note_id)
    assert c.joined_text == text
    await c.close()

    def log_state():
        snapshot = NoteSnapshot.objects.filter(note_id=note_id).first()
        updates = NoteUpdate.objects.filter(note_id=note_id).count()
        return (snapshot.last_update_id if snapshot else None), updates

    marker_before, _ = await database_sync_to_async(log_state)()
    # More edits from both sides, alice's inside bob's, then alice leaves and bob,
    # the last editor, leaves through instance 2: instance 2 saves and compacts.
    await b.type("[b2]", at=2)
    await converged([a, b])
    await a.insert(4, "[a2]")
    text = await converged([a, b])
    await a.close()
    await b.type("[b3]")
    text = await converged([b])
    await b.close()
    for _ in range(50):
        marker_after, remaining = await database_sync_to_async(log_state)()
        if marker_after != marker_before and remaining == 0:
            break
        await asyncio.sleep(0.1)
    assert marker_after != marker_before and remaining == 0, "instance 2 compacted"
    # Second join on instance 1, whose cache predates the compaction.
    c = await RemoteEditor.open(one.ws, carol, note_id)
    d = await RemoteEditor.open(two.ws, dave, note_id)
    assert (c.joined_text, d.joined_text) == (text, text)
    await c.insert(0, "c")
    await d.type("d")
    text = await converged([c, d])
    assert text.startswith("cb1") and text.endswith("[b3]d")
    assert await stored_content(one, note_id, alice, text) == text
    await close_all(c, d)
