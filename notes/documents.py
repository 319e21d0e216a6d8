"""The socket path's side of notes, one set per event loop: open documents kept in
memory, the group-committing update writer, and the batching content saver.

y-py documents may not cross threads, so they live on the loop's thread; the database
work runs on the background pool and hands back bytes. A cached document is refreshed
from the database before it is used for a join or a save (only what it lacks is read:
a changed snapshot and unseen updates), so updates stored by other instances count.
"""

import asyncio
import logging
import time
from collections import OrderedDict

from django.conf import settings

from notes import crdt, services
from realtime.db import background_db, dedicated_executor
from realtime.loops import per_loop

log = logging.getLogger(__name__)


class Entry:
    """A cached document: the snapshot marker it has and the update ids applied."""

    __slots__ = ("doc", "marker", "seen")

    def __init__(self) -> None:
        self.doc = crdt.doc_from(())
        self.marker: int | None = None
        self.seen: set[int] = set()


class Documents:
    """Least-recently-used documents of this loop (NOTE_DOCUMENT_CACHE of them)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.loading: dict[str, asyncio.Future] = {}

    async def load(self, note_ids: list[str]) -> dict[str, Entry]:
        """Bring these documents up to date with the database; notes that do not exist
        are left out (and dropped from the cache). Loads of one note take turns, so a
        note is seeded once."""
        note_ids = list(dict.fromkeys(note_ids))
        while busy := [self.loading[n] for n in note_ids if n in self.loading]:
            await asyncio.wait(busy)
        mine = asyncio.get_running_loop().create_future()
        for note_id in note_ids:
            self.loading[note_id] = mine
        try:
            return await self._load(note_ids)
        finally:
            for note_id in note_ids:
                del self.loading[note_id]
            mine.set_result(None)

    async def _load(self, note_ids: list[str]) -> dict[str, Entry]:
        known = {}
        for note_id in note_ids:
            entry = self.entries.get(note_id)
            known[note_id] = (entry.marker, set(entry.seen)) if entry else (None, set())
        fetched = await background_db(services.documents_fetch)(known=known)
        loaded = {}
        for note_id in note_ids:
            delta = fetched.get(note_id)
            if delta is None:
                self.entries.pop(note_id, None)
                continue
            entry = self.entries.get(note_id) or Entry()
            if delta["state"] is not None:
                crdt.doc_apply(entry.doc, delta["state"])
                entry.marker = delta["marker"]
            for _id, update in delta["updates"]:
                crdt.doc_apply(entry.doc, update)
            # Ids merged into a snapshot leave the log; keep only those still in it.
            entry.seen = delta["ids"]
            self._put(note_id, entry)
            loaded[note_id] = entry
        return loaded

    def applied(self, note_id: str, update_id: int, update: bytes) -> None:
        """An update this loop stored: apply it to the cached document, if any."""
        entry = self.entries.get(note_id)
        if entry is not None:
            crdt.doc_apply(entry.doc, update)
            entry.seen.add(update_id)

    def _put(self, note_id: str, entry: Entry) -> None:
        self.entries[note_id] = entry
        self.entries.move_to_end(note_id)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


# The writer's one thread (and database connection): an update's commit never waits
# behind saves, compaction or the cleanup worker on the shared pool.
WRITER_THREAD = dedicated_executor("notes-writer")


class UpdateWriter:
    """Group commit: every update that arrives while a write is in flight goes in the
    next one, one transaction for all of them. Each caller gets its own result only
    after the commit."""

    def __init__(self) -> None:
        self.queue: list = []
        self.task: asyncio.Task | None = None

    async def store(self, note_id: str, update: bytes, author_id: int) -> int | None:
        """Store one checked update durably; its sequence number, or None if the note
        is gone."""
        future = asyncio.get_running_loop().create_future()
        self.queue.append((note_id, update, author_id, future))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                seqs = await background_db(services.updates_store, WRITER_THREAD)(
                    items=[(n, u, a) for n, u, a, _ in batch]
                )
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), seq in zip(batch, seqs, strict=True):
                if not future.done():
                    future.set_result(seq)


class Saver:
    """Notes' content follows their documents within NOTE_SAVE_DELAY of an update.

    A note is due NOTE_SAVE_DELAY after the first update since its last save; a later
    update never moves that time, so a steady stream of edits still saves. Every due
    note is saved in one batch: one refresh of their documents, one transaction.
    """

    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.due: dict[str, float] = {}
        self.compact: set[str] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None

    def schedule(self, note_id: str, *, compact: bool = False) -> None:
        self.due.setdefault(note_id, time.monotonic() + settings.NOTE_SAVE_DELAY)
        if compact:
            self.compact.add(note_id)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.wake.set()

    async def _run(self) -> None:
        while self.due:
            self.wake.clear()
            wait = min(self.due.values()) - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(self.wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            now = time.monotonic()
            ready = [n for n, at in self.due.items() if at <= now]
            for note_id in ready:
                del self.due[note_id]
            try:
                await self.save(ready)
            except Exception:
                log.exception("saving notes %s failed; retrying", ready[:10])
                for note_id in ready:
                    self.due.setdefault(note_id, now + settings.NOTE_SAVE_DELAY)
                continue
            compact = [n for n in ready if n in self.compact]
            self.compact.difference_update(compact)
            for note_id in compact:
                try:
                    await background_db(services.compact_if_needed)(note_id=note_id)
                except Exception:
                    log.exception("compacting note %s failed", note_id)

    async def save(self, note_ids: list[str]) -> None:
        """Store these notes' content from their documents now."""
        loaded = await self.documents.load(note_ids)
        contents = {
            note_id: (crdt.doc_text(entry.doc), crdt.doc_clock(entry.doc))
            for note_id, entry in loaded.items()
        }
        if contents:
            await background_db(services.contents_store)(contents=contents)

    async def flush(self) -> None:
        """Save every pending note now (last editor left, graceful shutdown)."""
        ready, self.due = list(self.due), {}
        if ready:
            await self.save(ready)


class Notes:
    """The per-loop set."""

    def __init__(self) -> None:
        self.documents = Documents(settings.NOTE_DOCUMENT_CACHE)
        self.writer = UpdateWriter()
        self.saver = Saver(self.documents)


# This loop's documents, writer and saver.
notes = per_loop(Notes)
