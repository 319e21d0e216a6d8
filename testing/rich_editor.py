"""A TipTap-like editor document for tests: a pycrdt XmlFragment (named "default",
as TipTap's Collaboration extension names it), with Yjs bytes as Open WebUI sends
them, JSON lists of ints."""

import pycrdt

FRAGMENT = "default"


class RichEditor:
    """One editor's document: paragraphs of text in an XmlFragment."""

    def __init__(self, name: str = FRAGMENT) -> None:
        self.doc = pycrdt.Doc()
        self.fragment = self.doc.get(name, type=pycrdt.XmlFragment)

    def apply(self, update: list[int]) -> None:
        """Apply a state or update received as an int list."""
        self.doc.apply_update(bytes(update))

    def paragraph(self, text: str, bold: str = "") -> list[int]:
        """Append a paragraph (with an optional bold run); the update as int list."""
        before = self.doc.get_state()
        node = self.fragment.children.append(pycrdt.XmlElement("paragraph"))
        run = node.children.append(pycrdt.XmlText(text))
        if bold:
            run.insert(len(text), bold, {"bold": True})
        return list(self.doc.get_update(before))

    def state(self) -> list[int]:
        """Array.from(Y.encodeStateAsUpdate(doc))."""
        return list(self.doc.get_update())

    @property
    def text(self) -> str:
        """Each paragraph's text on a line of its own."""
        return "\n".join(
            "".join(c for c, _ in child.children[0].diff())
            for child in self.fragment.children
            if len(child.children)
        )
