"""notes/crdt.py on pycrdt: notes stored by y-py still read the same, text edits land
where they should in any script, and client bytes are checked before pycrdt."""

import base64
import json

import pytest

from notes import crdt, crdt_proxy
from notes.tests import fuzzing

CASES = json.loads(fuzzing.FIXTURE.read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_notes_stored_by_ypy_read_the_same(case):
    """Snapshots and logs written by y-py 0.6.2 (and npm yjs) give the text y-py
    read from them, and survive a compaction by pycrdt."""
    stored = [case["snapshot"]] if case["snapshot"] else []
    updates = [base64.b64decode(u) for u in stored + case["updates"]]
    doc = crdt.doc_from(updates)
    assert crdt.doc_text(doc) == case["text"]
    compacted = crdt.doc_from([crdt.doc_state(doc)])
    assert crdt.doc_text(compacted) == case["text"]
    assert crdt.doc_clock(compacted) == crdt.doc_clock(doc) > 0
    for update in updates:
        crdt_proxy.update_check(update)  # what y-py stored passes today's check


@pytest.mark.parametrize(
    "old, new",
    [
        ("Grüße aus Köln", "Grüße aus Bonn"),
        ("a😀b", "a😀😀b"),
        ("a😀b", "ab"),
        ("日本語のテキスト", "日本語テキスト!"),
        ("", "é"),
        ("x é y", ""),
        ("café", "cafe\u0301"),
    ],
)
def test_text_update_in_any_script(old, new):
    seed = crdt.seed_update(old)
    doc, replica = crdt.doc_from([seed]), crdt.doc_from([seed])
    assert crdt.doc_text(doc) == old
    update = crdt.text_update(doc, new)
    assert crdt.doc_text(doc) == new
    # The update alone turns another copy of the old document into the new text.
    crdt_proxy.update_check(update)
    crdt.doc_apply(replica, update)
    assert crdt.doc_text(replica) == new


@pytest.mark.parametrize(
    "base, concurrent, edit, merged",
    [
        (
            "alpha beta gamma",
            "alpha beta gamma delta",
            "ALPHA beta gamma",
            "ALPHA beta gamma delta",
        ),
        (
            "Grüße 😀 aus Köln",
            "Grüße 😀 aus Köln!",
            "Grüße 😀😀 aus Köln",
            "Grüße 😀😀 aus Köln!",
        ),
    ],
)
def test_text_update_keeps_a_concurrent_edit(base, concurrent, edit, merged):
    server = crdt.doc_from([crdt.seed_update(base)])
    other = crdt.doc_from([crdt.doc_state(server)])
    theirs = crdt.text_update(other, concurrent)
    ours = crdt.text_update(server, edit)
    both = crdt.doc_from([crdt.doc_state(server), theirs, ours])
    assert crdt.doc_text(both) == merged


def test_text_with_a_lone_surrogate_is_refused():
    doc = crdt.doc_from([crdt.seed_update("ok")])
    with pytest.raises(crdt.InvalidText):
        crdt.text_update(doc, "ok \ud800")
    assert crdt.doc_text(doc) == "ok"


def test_update_check_refuses_the_killers_and_accepts_real_updates():
    for data in fuzzing.KNOWN_KILLERS + fuzzing._crafted():
        with pytest.raises(crdt_proxy.Refused):
            crdt_proxy.update_check(data)
    for update in fuzzing.real_updates():
        crdt_proxy.update_check(update)


def test_a_stored_update_pycrdt_refuses_is_left_out():
    good = crdt.seed_update("kept")
    doc = crdt.doc_from([b"\x01\x01garbage", good])
    assert crdt.doc_text(doc) == "kept"
