"""notes/crdt.py on pycrdt: notes stored by y-py still read the same, text edits land
where they should in any script, and client bytes are checked before pycrdt."""

import base64
import json

import pycrdt
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


def _rich(name: str):
    doc = pycrdt.Doc()
    fragment = doc.get(name, type=pycrdt.XmlFragment)
    heading = fragment.children.append(pycrdt.XmlElement("heading", {"level": 2}))
    heading.children.append(pycrdt.XmlText("Plan"))
    para = fragment.children.append(pycrdt.XmlElement("paragraph"))
    run = para.children.append(pycrdt.XmlText("do "))
    run.insert(3, "it", {"bold": True})
    items = fragment.children.append(pycrdt.XmlElement("bulletList"))
    for word in ("one", "two"):
        item = items.children.append(pycrdt.XmlElement("listItem"))
        inner = item.children.append(pycrdt.XmlElement("paragraph"))
        inner.children.append(pycrdt.XmlText(word))
    return doc


@pytest.mark.parametrize("name", crdt.FRAGMENT_NAMES)
def test_rich_text_documents_give_text_and_prosemirror_json(name):
    """An XmlFragment of either name TipTap and y-prosemirror use: blocks on lines of
    their own, ProseMirror JSON with attributes and marks, and a Y.Text root beside
    it does not count."""
    doc = crdt.doc_from([_rich(name).get_update()])
    assert crdt.doc_text(doc) == "Plan\ndo it\none\ntwo"
    json_doc = crdt.doc_json(doc)
    heading, para, items = json_doc["content"]
    assert heading == {
        "type": "heading",
        "attrs": {"level": 2},
        "content": [{"type": "text", "text": "Plan"}],
    }
    assert para["content"][1] == {
        "type": "text",
        "text": "it",
        "marks": [{"type": "bold"}],
    }
    assert [i["content"][0]["content"][0]["text"] for i in items["content"]] == [
        "one",
        "two",
    ]
    # A plain-text document has no JSON; its text is the Y.Text's.
    plain = crdt.doc_from([crdt.seed_update("plain")])
    assert crdt.doc_json(plain) is None and crdt.doc_text(plain) == "plain"
    # REST's plain-text replace refuses a rich document rather than hide the edit.
    with pytest.raises(crdt.InvalidText):
        crdt.text_update(doc, "flat")


def test_deeply_nested_elements_are_cut_not_a_crash():
    doc = pycrdt.Doc()
    node = doc.get("default", type=pycrdt.XmlFragment)
    for _ in range(crdt.MAX_XML_DEPTH + 50):
        node = node.children.append(pycrdt.XmlElement("blockquote"))
    node.children.append(pycrdt.XmlText("deep"))
    rebuilt = crdt.doc_from([doc.get_update()])
    assert crdt.doc_text(rebuilt) == ""  # the text lies below the cut
    assert crdt.doc_json(rebuilt)["content"][0]["type"] == "blockquote"
