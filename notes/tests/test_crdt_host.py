"""The CRDT host process (notes/crdt_host.py) through its proxy: what kills pycrdt
kills only the host, a hung host is replaced, its memory is capped, and what was
stored can always be rebuilt without the update that kills it."""

import base64
import json
import os
import signal
import time
from pathlib import Path

import pytest

from notes import crdt
from notes.crdt_proxy import (
    CrdtHost,
    HostCrashed,
    InvalidText,
    Refused,
    merge,
    usable,
)
from notes.tests import fuzzing

KILLER = json.loads(
    (Path(__file__).parent / "fixtures" / "pycrdt_segfault.json").read_text()
)
KILLER_UPDATES = [base64.b64decode(u) for u in KILLER["updates"]]


@pytest.fixture
def host():
    host = CrdtHost("test")
    yield host
    host.close()


def test_operations(host):
    seed = host.call("seed", "Grüße 😀")
    host.call("apply", "a", [seed], True)
    assert host.call("contents", ["a", "missing"]) == {
        "a": ("Grüße 😀", crdt.doc_clock(crdt.doc_from([seed])))
    }
    state = host.call("state", "a")
    assert crdt.doc_text(crdt.doc_from([state])) == "Grüße 😀"
    update, text, _ = host.call("text_update", [state], "Grüße! 😀")
    assert text == "Grüße! 😀" and update
    assert host.call("merge", [state, update])[1] == "Grüße! 😀"
    assert host.call("apply", "absent", [update], False) is False
    host.call("drop", ["a"])
    assert host.call("state", "a") is None


def test_refusals_keep_the_host(host):
    pid = host.call("ping")
    with pytest.raises(Refused):
        host.call("apply", "a", [b"\x01\x01garbage"], True)
    with pytest.raises(InvalidText):
        host.call("text_update", [], "lone \ud800")
    assert host.call("ping") == pid and host.generation == 0


def test_updates_that_kill_pycrdt_kill_only_the_host(host):
    """Seven well-formed updates that, in one document, make pycrdt segfault."""
    pid = host.call("ping")
    with pytest.raises(HostCrashed):
        host.call("apply", "doc", KILLER_UPDATES, True)
    assert host.generation == 1
    assert host.call("ping") != pid  # a new host serves the next call
    # What was stored can still be read: the killer is found and left out.
    good = usable(host, KILLER_UPDATES)
    assert len(good) < len(KILLER_UPDATES)
    state, text, _ = merge(host, KILLER_UPDATES)
    assert crdt.doc_text(crdt.doc_from([state])) == text


def test_a_hung_host_is_replaced(host, settings):
    settings.NOTE_CRDT_TIMEOUT = 0.5
    pid = host.call("ping")
    os.kill(pid, signal.SIGSTOP)  # frozen: it never answers
    started = time.monotonic()
    with pytest.raises(HostCrashed):
        host.call("ping")
    assert time.monotonic() - started < 2
    assert host.call("ping") != pid


def test_the_hosts_memory_is_capped(host, settings):
    """Five bytes that make pycrdt allocate over 500 MB, sent past the structural
    check straight to a host capped at 300 MB: the host refuses or dies, and the
    caller learns which."""
    settings.NOTE_CRDT_MEMORY_MB = 300
    pid = host.call("ping")
    bomb = fuzzing._crafted()[0]
    with pytest.raises((Refused, HostCrashed)):
        host.call("apply", "bomb", [bomb], True)
    if host.call("ping") == pid:  # it refused: its peak memory stayed under the cap
        status = Path(f"/proc/{pid}/status").read_text()
        peak_kb = int(status.split("VmHWM:")[1].split()[0])
        assert peak_kb < 300 * 1024


def imports_of(path: Path) -> set[str]:
    """Modules a file imports (`import a.b`, `from a import b` gives a and a.b)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_server_module_runs_pycrdt():
    """pycrdt is imported by notes/crdt.py alone, and notes/crdt.py by the host
    alone: no code a server process runs can reach native CRDT code."""
    root = Path(__file__).resolve().parents[2]
    sources = [
        path
        for app in ("realtime", "chats", "channels_app", "notes")
        for path in (root / app).rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts
    ]
    assert len(sources) > 50
    pycrdt_users = {p.name for p in sources if "pycrdt" in imports_of(p)}
    crdt_users = {p.name for p in sources if "notes.crdt" in imports_of(p)}
    assert pycrdt_users == {"crdt.py"}
    assert crdt_users == {"crdt_host.py"}
