"""The CRDT host: a child process that holds every pycrdt document of its parent and
runs every CRDT operation, so that no native CRDT code ever runs inside a server.

Why a process: pycrdt (yrs) trusts what it decodes. The structural check
(notes/yjs_format.py) stops what can be recognised from the bytes alone, but fuzzing
found sequences of updates, each of them well-formed, that crash pycrdt once applied
to the same document (notes/tests/fixtures/pycrdt_segfault.json: a SIGSEGV). Here such
a crash ends this process only; the parent answers the update that caused it with
`bad_request` and starts a new host (notes/crdt_proxy.py). The parent also bounds each
call's time and this process's address space (NOTE_CRDT_TIMEOUT, NOTE_CRDT_MEMORY_MB).

Run as `python -m notes.crdt_host`: requests and answers are length-prefixed pickles
on stdin and stdout, between two ends of this project only. Django is not loaded.
"""

import os
import pickle
import resource
import struct
import sys

from notes import crdt

HEADER = struct.Struct("<I")


class Host:
    """Documents by key, and the operations on them and on lists of updates."""

    def __init__(self) -> None:
        self.docs: dict[str, object] = {}

    def apply(self, key: str, updates: list[bytes], create: bool) -> bool:
        """Apply updates to the document `key`; False if it is not held and not to be
        created. If pycrdt refuses one, the document is dropped (it may be
        half-changed) and the error goes back."""
        doc = self.docs.get(key)
        if doc is None:
            if not create:
                return False
            doc = self.docs[key] = crdt.doc_from(())
        try:
            for update in updates:
                crdt.doc_apply(doc, update)
        except crdt.InvalidUpdate:
            del self.docs[key]  # the earlier ones of this call stay applied
            raise
        return True

    def state(self, key: str) -> bytes | None:
        """The document as one update, or None if this host does not hold it."""
        doc = self.docs.get(key)
        return None if doc is None else crdt.doc_state(doc)

    def contents(self, keys: list[str]) -> dict[str, tuple[str, int]]:
        """(text, clock) of each held document."""
        return {
            key: (crdt.doc_text(doc), crdt.doc_clock(doc))
            for key in keys
            if (doc := self.docs.get(key)) is not None
        }

    def view(self, key: str) -> tuple[bytes, str, dict | None, int] | None:
        """(state, text, ProseMirror JSON or None, clock) of a held document."""
        doc = self.docs.get(key)
        if doc is None:
            return None
        return (
            crdt.doc_state(doc),
            crdt.doc_text(doc),
            crdt.doc_json(doc),
            crdt.doc_clock(doc),
        )

    def render(self, updates: list[bytes]) -> tuple[str, dict | None]:
        """(text, ProseMirror JSON or None) of a document made of these updates."""
        doc = crdt.doc_from(updates)
        return crdt.doc_text(doc), crdt.doc_json(doc)

    def drop(self, keys: list[str]) -> None:
        for key in keys:
            self.docs.pop(key, None)

    def merge(self, updates: list[bytes]) -> tuple[bytes, str, int]:
        """(state, text, clock) of a document made of these updates."""
        doc = crdt.doc_from(updates)
        return crdt.doc_state(doc), crdt.doc_text(doc), crdt.doc_clock(doc)

    def summary(self, key: str) -> tuple[bytes, str, int] | None:
        doc = self.docs.get(key)
        if doc is None:
            return None
        return crdt.doc_state(doc), crdt.doc_text(doc), crdt.doc_clock(doc)

    def text_update(
        self, updates: list[bytes], new_text: str
    ) -> tuple[bytes, str, int]:
        """(update, text, clock): the update that turns the document made of
        `updates` into `new_text`, and the result."""
        doc = crdt.doc_from(updates)
        update = crdt.text_update(doc, new_text)
        return update, crdt.doc_text(doc), crdt.doc_clock(doc)

    def seed(self, text: str) -> bytes:
        return crdt.seed_update(text)

    def ping(self) -> int:
        return os.getpid()


# Which errors travel back as refusals (any other ends the host). After a panic the
# host answers, then exits: the parent starts a clean one.
REFUSALS = {
    crdt.InvalidUpdate: "invalid_update",
    crdt.InvalidText: "invalid_text",
    crdt.Panicked: "panicked",
}


def serve(read, write) -> None:
    """Answer requests until the parent closes the pipe."""
    host = Host()
    while True:
        head = read(HEADER.size)
        if len(head) < HEADER.size:
            return
        op, args = pickle.loads(read(HEADER.unpack(head)[0]))
        try:
            answer = ("ok", getattr(host, op)(*args))
        except tuple(REFUSALS) as exc:
            answer = (REFUSALS[type(exc)], str(exc))
        body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        write(HEADER.pack(len(body)) + body)
        if answer[0] == "panicked":
            return


def main() -> None:
    limit_mb = int(os.environ.get("NOTE_CRDT_MEMORY_MB", "0"))
    if limit_mb:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    serve(stdin.read, write)


if __name__ == "__main__":
    main()
