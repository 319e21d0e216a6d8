"""The one module that knows the CRDT library (pycrdt, the Python binding of yrs).

Documents hold their text in one Y.Text named "content" (the demo editor's binding).
Updates and states travel as bytes (Yjs update encoding v1, which npm yjs and y-py
write too); callers base64 them for JSON.

Only the CRDT host process (notes/crdt_host.py) imports this module, never a server:
native code that crashes on bad input must crash a child, not the server. The server
reaches it through notes/crdt_proxy.py. Django is not needed here.
"""

import logging
from collections.abc import Iterable

import pycrdt

log = logging.getLogger(__name__)

TEXT_NAME = "content"


class InvalidUpdate(ValueError):
    """Bytes pycrdt refuses to decode; the document is unchanged."""


class Panicked(RuntimeError):
    """pycrdt panicked while applying an update: its invariants broke, and no
    document of this process can be trusted any more (the host process exits)."""


class InvalidText(ValueError):
    """A string that cannot be text of a document (lone UTF-16 surrogates)."""


def _text(doc: pycrdt.Doc) -> pycrdt.Text:
    return doc.get(TEXT_NAME, type=pycrdt.Text)


def _unit_counter():
    """pycrdt's Text indexes count UTF-8 bytes in this release (characters or UTF-16
    units in others): a probe decides, so text_update stays right across versions."""
    probe = pycrdt.Doc()
    text = _text(probe)
    text += "é😀"
    size = len(text)
    if size == len("é😀".encode()):
        return lambda s: len(s.encode())
    if size == len("é😀".encode("utf-16-le")) // 2:
        return lambda s: len(s.encode("utf-16-le")) // 2
    return len


_units = _unit_counter()


def doc_from(updates: Iterable[bytes]) -> pycrdt.Doc:
    """A document with every update applied, in order. An update pycrdt refuses to
    decode is left out with a warning (it changed nothing) rather than making the
    whole note unreadable: rows stored by y-py, whose decoder accepted other bytes,
    must not lock a note for good."""
    doc = pycrdt.Doc()
    _text(doc)
    for update in updates:
        try:
            doc_apply(doc, update)
        except InvalidUpdate as exc:
            log.warning("left out a stored update pycrdt refuses: %s", exc)
    return doc


def doc_text(doc: pycrdt.Doc) -> str:
    """The document's text."""
    return str(_text(doc))


def doc_apply(doc: pycrdt.Doc, update: bytes) -> None:
    """Apply one update (or a whole state) to a document: InvalidUpdate if pycrdt
    cannot decode it, Panicked if it panicked applying it. Applying the same update
    twice changes nothing, and updates may come in any order: one whose causal
    dependencies are missing waits inside the document until they arrive."""
    try:
        doc.apply_update(update)
    except Exception as exc:
        raise InvalidUpdate(str(exc)[:200]) from None
    except BaseException as exc:  # a Rust panic arrives as a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise Panicked(str(exc)[:200]) from None


def doc_clock(doc: pycrdt.Doc) -> int:
    """How many operations the document holds: the sum of its state vector.

    A document that contains another one has a higher clock, so a save can refuse to
    replace content built from a later document with content from an earlier one.
    """
    data = doc.get_state()
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


def doc_state(doc: pycrdt.Doc) -> bytes:
    """The whole document as one update."""
    return doc.get_update()


def text_update(doc: pycrdt.Doc, new_text: str) -> bytes:
    """An update that turns the document's text into `new_text`, touching only the
    changed middle (common prefix and suffix kept), so concurrent edits elsewhere in
    the text survive."""
    try:
        new_text.encode()
    except UnicodeEncodeError:
        raise InvalidText("text holds a lone surrogate") from None
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
    before = doc.get_state()
    text = _text(doc)
    at = _units(old[:start])
    with doc.transaction():
        if end_old > start:
            del text[at : at + _units(old[start:end_old])]
        if end_new > start:
            text.insert(at, new_text[start:end_new])
    return doc.get_update(before)


def seed_update(text: str) -> bytes:
    """A first update holding `text` (for notes that have content but no document)."""
    return text_update(doc_from(()), text) if text else b""
