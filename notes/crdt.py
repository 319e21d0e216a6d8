"""The one module that knows the CRDT library (y-py); swap it here.

Documents hold their text in one Y.Text named "content" (the demo editor's binding).
Updates and states travel as bytes; callers base64 them for JSON.
"""

from collections.abc import Iterable

import y_py as Y

TEXT_NAME = "content"


class InvalidUpdate(ValueError):
    """Bytes that are not a Yjs update."""


def doc_from(updates: Iterable[bytes]) -> Y.YDoc:
    """A document with every update applied, in order."""
    doc = Y.YDoc()
    for update in updates:
        Y.apply_update(doc, update)
    return doc


def doc_text(doc: Y.YDoc) -> str:
    """The document's text."""
    return str(doc.get_text(TEXT_NAME))


def doc_apply(doc: Y.YDoc, update: bytes) -> None:
    """Apply one update (or a whole state) to a document. Applying the same update
    twice changes nothing: Yjs merges by identity."""
    Y.apply_update(doc, update)


def doc_clock(doc: Y.YDoc) -> int:
    """How many operations the document holds: the sum of its state vector.

    A document that contains another one has a higher clock, so a save can refuse to
    replace content built from a later document with content from an earlier one.
    """
    data = bytes(Y.encode_state_vector(doc))
    pos = 0

    def varuint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    total = 0
    for _ in range(varuint()):
        varuint()  # client id
        total += varuint()
    return total


def doc_state(doc: Y.YDoc) -> bytes:
    """The whole document as one update."""
    return bytes(Y.encode_state_as_update(doc))


def update_check(update: bytes) -> None:
    """Raise InvalidUpdate unless the bytes decode as a Yjs update.

    Decoding into an empty document proves the structure; an update whose causal
    dependencies are missing is legal (Yjs keeps it pending until they arrive).
    """
    try:
        Y.apply_update(Y.YDoc(), update)
    except BaseException as exc:  # y-py raises Rust panics as BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise InvalidUpdate(str(exc)[:200]) from None


def text_update(doc: Y.YDoc, new_text: str) -> bytes:
    """An update that turns the document's text into `new_text`, touching only the
    changed middle (common prefix and suffix kept), so concurrent edits elsewhere in
    the text survive."""
    old = doc_text(doc)
    if old == new_text:
        return b""
    start = 0
    while start < min(len(old), len(new_text)) and old[start] == new_text[start]:
        start += 1
    end_old, end_new = len(old), len(new_text)
    while (
        end_old > start
        and end_new > start
        and old[end_old - 1] == new_text[end_new - 1]
    ):
        end_old -= 1
        end_new -= 1
    before = Y.encode_state_vector(doc)
    text = doc.get_text(TEXT_NAME)
    with doc.begin_transaction() as txn:
        if end_old > start:
            text.delete_range(txn, start, end_old - start)
        if end_new > start:
            text.insert(txn, start, new_text[start:end_new])
    return bytes(Y.encode_state_as_update(doc, before))


def seed_update(text: str) -> bytes:
    """A first update holding `text` (for notes that have content but no document)."""
    return text_update(Y.YDoc(), text) if text else b""
