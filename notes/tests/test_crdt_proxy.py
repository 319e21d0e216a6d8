"""Which CRDT host a service uses: a compaction, which can merge a long log for
seconds, must not hold up the REST edits and first-join seeding of other notes (a
host answers one call at a time)."""

import threading

import pytest

from notes import crdt_proxy, services
from notes.models import Note
from testing.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_long_compaction_does_not_hold_up_other_notes():
    alice = user_create("alice")
    busy = services.note_create(owner=alice, title="Long log", content="old")
    services.content_replace(note=busy, content="old and new", author_id=alice.id)
    other = services.note_create(owner=alice, title="Other", content="")
    compaction = crdt_proxy.shared_host(crdt_proxy.COMPACTION)
    assert compaction is not crdt_proxy.shared_host()

    # While the compaction host is busy (as in a long merge), a REST edit of another
    # note goes through at once...
    with compaction._lock:
        editing = in_thread(
            lambda: services.content_replace(
                note=other, content="typed meanwhile", author_id=alice.id
            )
        )
        editing.join(timeout=10)
        assert not editing.is_alive()
    assert Note.objects.get(id=other.id).content == "typed meanwhile"
    # ...and a compaction does not need the host that edits and seeding use.
    with crdt_proxy.shared_host()._lock:
        compacting = in_thread(lambda: services.compact(note_id=busy.id))
        compacting.join(timeout=10)
        assert not compacting.is_alive()
    assert services.pending_update_count(note_id=busy.id) == 0
