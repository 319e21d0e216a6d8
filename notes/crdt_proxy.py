"""The server's side of the CRDT host (notes/crdt_host.py): checks of client bytes,
and calls into the child process that runs pycrdt, bounded in time and memory.

A call that kills the host (a crash, an exhausted memory limit) or outlives
NOTE_CRDT_TIMEOUT raises HostCrashed; the host is gone with every document it held,
`generation` counts up, and the next call starts a new one. A panic inside pycrdt is
answered (Refused) and ends the host the same way: after one, none of its documents
can be trusted. Callers that asked to
apply a client's update answer it `bad_request`; callers that rebuild from stored
updates go through `usable()`, which finds and leaves out an update that kills it.
"""

import asyncio
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from notes import yjs_format

log = logging.getLogger(__name__)

HEADER_SIZE = 4
PROJECT_DIR = Path(__file__).resolve().parent.parent


class Refused(ValueError):
    """Bytes that are not an acceptable Yjs update or awareness update."""


class InvalidText(ValueError):
    """A string that cannot be a document's text (lone UTF-16 surrogates)."""


class HostCrashed(RuntimeError):
    """The CRDT host died or hung during a call; it was replaced."""


def update_check(update: bytes) -> None:
    """Refused unless the bytes are a well-formed Yjs update within bounds (the walk
    of notes/yjs_format.py, in this process: no native code)."""
    try:
        yjs_format.check_update(update, max_structs=settings.NOTE_UPDATE_MAX_STRUCTS)
    except yjs_format.Malformed as exc:
        raise Refused(str(exc)) from None


def awareness_check(update: bytes) -> None:
    """Refused unless the bytes are a well-formed awareness update (the server only
    relays them; the browsers that receive them decode them)."""
    try:
        yjs_format.check_awareness(update)
    except yjs_format.Malformed as exc:
        raise Refused(str(exc)) from None


class CrdtHost:
    """One child process running pycrdt, called synchronously, one call at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.generation = 0  # counts up each time a host is lost
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def call(self, op: str, *args):
        """Run `op` in the host; its result, or Refused / InvalidText / HostCrashed."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                # It died between calls (killed from outside): not this call's doing.
                self._lost(proc, "died between calls")
                proc = None
            if proc is None:
                proc = self._spawn()
            body = pickle.dumps((op, args), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                proc.stdin.write(len(body).to_bytes(HEADER_SIZE, "little") + body)
                proc.stdin.flush()
                size = int.from_bytes(self._read(proc, HEADER_SIZE), "little")
                kind, value = pickle.loads(self._read(proc, size))
            except (OSError, EOFError, TimeoutError) as exc:
                self._lost(proc, f"{op}: {exc}")
                raise HostCrashed(f"the CRDT host died during {op}") from None
        if kind == "ok":
            return value
        if kind == "invalid_text":
            raise InvalidText(value)
        if kind == "panicked":
            with self._lock:
                if self._proc is proc:
                    self._lost(proc, f"{op}: pycrdt panicked: {value}")
        raise Refused(value)

    def _read(self, proc: subprocess.Popen, size: int) -> bytes:
        """Exactly `size` bytes from the host, within NOTE_CRDT_TIMEOUT."""
        fd = proc.stdout.fileno()
        chunks, left = [], size
        while left:
            ready, _, _ = select.select([fd], [], [], settings.NOTE_CRDT_TIMEOUT)
            if not ready:
                raise TimeoutError(f"no answer in {settings.NOTE_CRDT_TIMEOUT}s")
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError(f"exit code {proc.poll()}")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _spawn(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "NOTE_CRDT_MEMORY_MB": str(settings.NOTE_CRDT_MEMORY_MB),
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "notes.crdt_host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=PROJECT_DIR,
        )
        # The child also exits by itself when this process's end of the pipe closes.
        weakref.finalize(self, _kill, self._proc)
        return self._proc

    def _lost(self, proc: subprocess.Popen, why: str) -> None:
        _kill(proc)
        log.error(
            "CRDT host %s (pid %s) lost (%s, exit %s); starting a new one",
            self.name,
            proc.pid,
            why,
            proc.returncode,
        )
        self._proc = None
        self.generation += 1

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                _kill(self._proc)
                self._proc = None


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:
            pass


class LoopHost(CrdtHost):
    """A host for an event loop: calls run on a thread of its own, in order."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"crdt-{name}")
        weakref.finalize(self, self._thread.shutdown, wait=False)

    async def run(self, op: str, *args):
        """`call` without blocking the loop."""
        return await self.offload(self.call, op, *args)

    async def offload(self, function, *args):
        """Run `function(*args)` (which calls this host) on the host's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(*args))


def usable(
    host: CrdtHost, updates: list[bytes], key: str = "usable", keep: bool = False
) -> list[int]:
    """Which of these updates (their indices) apply in order without being refused
    or ending the host: applied one at a time under a scratch key, and after a
    failure the document is built again from the good ones so far. The slow path,
    for stored updates after a failure (never expected: every stored update was
    applied once before it was stored)."""
    good: list[int] = []
    host.call("drop", [key])
    for index, update in enumerate(updates):
        try:
            host.call("apply", key, [update], True)
            good.append(index)
        except (Refused, HostCrashed) as exc:
            log.error(
                "stored update %d of %d left out (%s): %s",
                index,
                len(updates),
                type(exc).__name__,
                exc,
            )
            host.call("drop", [key])  # dropped, or gone with the host: build again
            host.call("apply", key, [updates[i] for i in good], True)
    if not keep:
        host.call("drop", [key])
    return good


def merge(host: CrdtHost, updates: list[bytes]) -> tuple[bytes, str, int]:
    """(state, text, clock) of the document made of these stored updates."""
    try:
        return host.call("merge", updates)
    except (Refused, HostCrashed):
        # Read the document that usable() built one update at a time: merging the
        # good ones again in one call can still kill or hang yrs (the fuzz test's
        # logs showed both), where applying them one by one did not.
        key = "merge"
        usable(host, updates, key=key, keep=True)
        try:
            summary = host.call("summary", key)
            if summary is None:  # the host died after the last good update
                raise HostCrashed("the CRDT host lost the merged document")
            return summary
        finally:
            host.call("drop", [key])


def render(host: CrdtHost, updates: list[bytes]) -> tuple[str, dict | None]:
    """(text, ProseMirror JSON or None) of the document made of these stored
    updates."""
    try:
        return host.call("render", updates)
    except (Refused, HostCrashed):
        good = usable(host, updates)
        return host.call("render", [updates[i] for i in good])


def text_update(
    host: CrdtHost, updates: list[bytes], new_text: str
) -> tuple[bytes, str, int]:
    """(update, text, clock): the update that turns the document made of these
    stored updates into `new_text` (InvalidText if it cannot be text)."""
    try:
        return host.call("text_update", updates, new_text)
    except (Refused, HostCrashed):
        good = usable(host, updates)
        return host.call("text_update", [updates[i] for i in good], new_text)


_shared: dict[str, CrdtHost] = {}
_shared_lock = threading.Lock()

# The host of the compaction job: merging a long log can take seconds, and a host
# answers one call at a time, so the REST edits and the seeding of a first join do
# not wait behind it.
COMPACTION = "compaction"


def shared_host(name: str = "shared") -> CrdtHost:
    """The process's host for services that run on database threads (REST edits,
    seeding; `shared_host(COMPACTION)` for compaction); the socket path's documents
    live in each loop's own LoopHost."""
    with _shared_lock:
        if name not in _shared:
            _shared[name] = CrdtHost(name)
        return _shared[name]
