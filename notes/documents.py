"""The socket path's side of notes, one set per event loop: open documents, the
group-committing update writer, and the batching content saver.

The documents themselves live in this loop's CRDT host, a child process
(notes/crdt_host.py); this module keeps, per note, what the host's copy was built
from (the snapshot marker and the update ids applied) and asks the host for states and
texts. A cached document is refreshed from the database before it is used for a join
or a save (only what it lacks is read: a changed snapshot and unseen updates), so
updates stored by other instances count. They arrive in any order: an update of this
instance that depends on another instance's (typed into its text) is applied before
its dependency is fetched, and the CRDT holds it pending until then. (y-py dropped
such pending updates when their dependencies came in a later call; that served stale
documents.)

A client's update is applied to the cached document first, in the host, and stored
only if that worked: an update that pycrdt refuses, or that kills the host, is never
stored, so the log never holds one that breaks a rebuild.
"""

import asyncio
import logging
import time
from collections import OrderedDict

from django.conf import settings

from notes import crdt_proxy, services
from notes.crdt_proxy import HostCrashed, LoopHost, Refused
from realtime.db import background_db, dedicated_executor
from realtime.loops import per_loop

log = logging.getLogger(__name__)

# Loads retried after the host was lost in the middle of one.
LOAD_ATTEMPTS = 3


class Entry:
    """What the host's copy of a note was built from: snapshot marker, update ids."""

    __slots__ = ("marker", "seen")

    def __init__(self) -> None:
        self.marker: int | None = None
        self.seen: set[int] = set()


class Documents:
    """Least-recently-used documents of this loop (NOTE_DOCUMENT_CACHE of them)."""

    def __init__(self, capacity: int, host: LoopHost) -> None:
        self.capacity = capacity
        self.host = host
        self.generation = host.generation
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.loading: dict[str, asyncio.Future] = {}
        # Stored updates that cannot be applied (found by _rebuild): left out.
        self.unusable: set[int] = set()

    def _sync(self) -> None:
        """A lost host took every document with it: forget what it held."""
        if self.generation != self.host.generation:
            self.entries.clear()
            self.generation = self.host.generation

    async def load(self, note_ids: list[str]) -> list[str]:
        """Bring these documents up to date with the database; returns the notes
        that exist (the others are dropped from the cache). Loads of one note take
        turns, so a note is seeded once."""
        note_ids = list(dict.fromkeys(note_ids))
        while busy := [self.loading[n] for n in note_ids if n in self.loading]:
            await asyncio.wait(busy)
        mine = asyncio.get_running_loop().create_future()
        for note_id in note_ids:
            self.loading[note_id] = mine
        try:
            for _ in range(LOAD_ATTEMPTS):
                try:
                    return await self._load(note_ids)
                except HostCrashed:
                    continue  # a stored update killed it: _rebuild finds which
            raise HostCrashed("the CRDT host keeps dying while loading notes")
        finally:
            for note_id in note_ids:
                del self.loading[note_id]
            mine.set_result(None)

    async def _load(self, note_ids: list[str]) -> list[str]:
        self._sync()
        known = {}
        for note_id in note_ids:
            entry = self.entries.get(note_id)
            known[note_id] = (entry.marker, set(entry.seen)) if entry else (None, set())
        fetched = await background_db(services.documents_fetch)(known=known)
        applied_in: dict[str, int] = {}  # note id -> host generation it went into
        for note_id in note_ids:
            delta = fetched.get(note_id)
            if delta is None:
                await self.forget(note_id)
                continue
            entry = self.entries.get(note_id)
            head = [delta["state"]] if delta["state"] is not None else []
            updates = head + [u for i, u in delta["updates"] if i not in self.unusable]
            generation = self.host.generation
            try:
                await self.host.run("apply", note_id, updates, True)
            except (Refused, HostCrashed):
                self._sync()
                entry = await self._rebuild(note_id)
                if entry is None:
                    continue
            else:
                if self.host.generation != generation:
                    # A new host took the call: it holds only this delta.
                    raise HostCrashed("the CRDT host was replaced during a load")
                entry = entry or Entry()
                if delta["state"] is not None:
                    entry.marker = delta["marker"]
                # Ids merged into a snapshot leave the log; keep those still in it.
                entry.seen = delta["ids"]
            self._sync()
            await self._put(note_id, entry)
            applied_in[note_id] = self.generation
        self._sync()
        if any(g != self.generation for g in applied_in.values()):
            raise HostCrashed("the CRDT host was lost during a load")
        return list(applied_in)

    async def _rebuild(self, note_id: str) -> Entry | None:
        """The note's document again from the whole of the database, leaving out a
        stored update that pycrdt refuses or that ends the host (remembered in
        `unusable`, so later loads skip it)."""
        self.entries.pop(note_id, None)
        delta = (
            await background_db(services.documents_fetch)(
                known={note_id: (None, set())}
            )
        ).get(note_id)
        if delta is None:
            return None
        head = [delta["state"]] if delta["state"] is not None else []
        rows = [(i, u) for i, u in delta["updates"] if i not in self.unusable]
        updates = head + [u for _, u in rows]
        good = set(
            await self.host.offload(crdt_proxy.usable, self.host, updates, note_id)
        )
        for index, (update_id, _) in enumerate(rows, start=len(head)):
            if index not in good:
                self.unusable.add(update_id)
        log.warning(
            "note %s rebuilt without %d stored updates",
            note_id,
            len(updates) - len(good),
        )
        await self.host.run(
            "apply", note_id, [u for i, u in enumerate(updates) if i in good], True
        )
        self._sync()
        entry = Entry()
        entry.marker = delta["marker"]
        entry.seen = delta["ids"]
        return entry

    async def apply_client(self, note_id: str, update: bytes) -> Entry:
        """Apply a client's checked update to the note's up-to-date document, before
        it is stored; Refused if pycrdt refuses it or it kills the host, LookupError
        if the note is gone. Returns the entry to hand to `stored` after the commit.

        A host that dies during the call may have died of something else (killed from
        outside, out of memory): the update is tried once more on a fresh host, with
        the document rebuilt from the database, and refused only if it kills that one
        too."""
        deaths = 0
        for _ in range(LOAD_ATTEMPTS + 1):
            self._sync()
            if note_id not in self.entries and not await self.load([note_id]):
                raise LookupError(note_id)
            generation = self.host.generation
            try:
                if await self.host.run("apply", note_id, [update], False):
                    self.entries.move_to_end(note_id)
                    return self.entries.get(note_id) or Entry()
            except Refused:
                self.entries.pop(note_id, None)  # the host dropped its copy
                raise
            except HostCrashed:
                deaths += 1
                if deaths == 2:
                    raise Refused("the update crashed the CRDT decoder") from None
                continue
            if self.host.generation == generation:
                self.entries.pop(note_id, None)  # evicted meanwhile: load again
        raise HostCrashed("could not keep the note's document loaded")

    def stored(self, note_id: str, update_id: int, entry: Entry) -> None:
        """An update that apply_client applied was stored under `update_id`. Only the
        document it was applied to counts it as seen: one rebuilt meanwhile (a new
        host, a rebuild) must still fetch it."""
        if self.entries.get(note_id) is entry:
            entry.seen.add(update_id)

    async def forget(self, note_id: str) -> None:
        """Drop a note's document (deleted, or an update applied but not stored)."""
        self.entries.pop(note_id, None)
        await self.host.run("drop", [note_id])

    async def state(self, note_id: str) -> bytes | None:
        """The up-to-date document as one update; None if the note does not exist."""
        return await self._read(note_id, "state")

    async def view(self, note_id: str) -> tuple[bytes, str, dict | None, int] | None:
        """(state, text, ProseMirror JSON or None, clock) of the up-to-date document;
        None if the note does not exist."""
        return await self._read(note_id, "view")

    async def _read(self, note_id: str, op: str):
        """The host's answer to `op` on the up-to-date document (None: no note); an
        answer of None means the host lost it meanwhile: load and ask again."""
        for _ in range(LOAD_ATTEMPTS):
            if not await self.load([note_id]):
                return None
            answer = await self.host.run(op, note_id)
            if answer is not None:
                return answer
        raise HostCrashed("could not keep the note's document loaded")

    async def contents(self, note_ids: list[str]) -> dict[str, tuple[str, int]]:
        """(text, clock) of these up-to-date documents (existing notes only)."""
        for _ in range(LOAD_ATTEMPTS):
            loaded = await self.load(note_ids)
            contents = await self.host.run("contents", loaded)
            if len(contents) == len(loaded):
                return contents
        raise HostCrashed("could not keep the notes' documents loaded")

    async def _put(self, note_id: str, entry: Entry) -> None:
        self.entries[note_id] = entry
        self.entries.move_to_end(note_id)
        evicted = []
        while len(self.entries) > self.capacity:
            evicted.append(self.entries.popitem(last=False)[0])
        if evicted:
            await self.host.run("drop", evicted)


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
        contents = await self.documents.contents(note_ids)
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
        self.host = LoopHost("documents")
        self.documents = Documents(settings.NOTE_DOCUMENT_CACHE, self.host)
        self.writer = UpdateWriter()
        self.saver = Saver(self.documents)


# This loop's documents, writer and saver.
notes = per_loop(Notes)
