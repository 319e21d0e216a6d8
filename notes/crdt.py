"""The one module that knows the CRDT library (pycrdt, the Python binding of yrs).

Documents hold their text in one Y.Text named "content" (the demo editor's binding),
or, for ProseMirror/TipTap editors (Open WebUI), in an XmlFragment named "prosemirror"
(y-prosemirror) or "default" (TipTap's Collaboration extension). The text of a
document is its fragment's, when it has one with content, else its Y.Text's.
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
# Root names of rich-text documents, in the order they are looked for.
FRAGMENT_NAMES = ("prosemirror", "default")
# Element nesting read when deriving text or JSON; deeper nodes are left out (real
# documents nest lists a few levels; a hostile one must not exhaust the stack).
MAX_XML_DEPTH = 64


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


def _fragment(doc: pycrdt.Doc) -> pycrdt.XmlFragment | None:
    """The document's rich-text root, if it has one with content."""
    names = set(doc.keys())
    for name in FRAGMENT_NAMES:
        if name in names:
            try:
                fragment = doc.get(name, type=pycrdt.XmlFragment)
                if len(fragment.children):
                    return fragment
            except Exception:  # a root of that name holding something else
                continue
    return None


def _xml_text(node, depth: int) -> str:
    if isinstance(node, pycrdt.XmlText):
        return "".join(chunk for chunk, _ in node.diff() if isinstance(chunk, str))
    if not isinstance(node, pycrdt.XmlElement) or depth > MAX_XML_DEPTH:
        return ""
    parts = []
    for child in node.children:
        text = _xml_text(child, depth + 1)
        # Blocks (elements) go on lines of their own; text runs join.
        if parts and isinstance(child, pycrdt.XmlElement):
            parts.append("\n")
        parts.append(text)
    return "".join(parts)


def _xml_json(node, depth: int) -> list[dict]:
    """ProseMirror JSON nodes of one Yjs XML node (a text gives one per run)."""
    if isinstance(node, pycrdt.XmlText):
        nodes = []
        for chunk, attrs in node.diff():
            if not isinstance(chunk, str):
                continue
            item: dict = {"type": "text", "text": chunk}
            if attrs:
                item["marks"] = [
                    {"type": k, **({"attrs": v} if isinstance(v, dict) and v else {})}
                    for k, v in attrs.items()
                ]
            nodes.append(item)
        return nodes
    if not isinstance(node, pycrdt.XmlElement) or depth > MAX_XML_DEPTH:
        return []
    item = {"type": node.tag}
    attrs = dict(node.attributes)
    if attrs:
        item["attrs"] = attrs
    content = [n for child in node.children for n in _xml_json(child, depth + 1)]
    if content:
        item["content"] = content
    return [item]


def doc_text(doc: pycrdt.Doc) -> str:
    """The document's text: its rich-text fragment's (blocks on lines of their own)
    when it has one, else its Y.Text's."""
    try:
        fragment = _fragment(doc)
        if fragment is not None:
            return "\n".join(_xml_text(child, 1) for child in fragment.children)
    except Exception as exc:  # an odd tree: the Y.Text still counts
        log.warning("could not read a rich-text document: %s", exc)
    return str(_text(doc))


def doc_json(doc: pycrdt.Doc) -> dict | None:
    """The rich-text fragment as ProseMirror JSON ({"type": "doc", ...}); None for a
    document without one."""
    try:
        fragment = _fragment(doc)
        if fragment is None:
            return None
        content = [n for child in fragment.children for n in _xml_json(child, 1)]
        return {"type": "doc", "content": content}
    except Exception as exc:
        log.warning("could not read a rich-text document: %s", exc)
        return None


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
    if _fragment(doc) is not None:
        # Plain text cannot say where its lines go in a tree of elements.
        raise InvalidText(
            "the note is rich text (an XmlFragment): edit it in an editor"
        )
    old = str(_text(doc))
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
