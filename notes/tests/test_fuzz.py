"""Fuzzing real server processes with Yjs bytes: 10,000 random and mutated updates
(truncated and bit-flipped real ones, huge varints, the crafted killers) and 2,000
awareness updates go to each server (uvicorn, then daphne). Each process must live, keep
its peak memory bounded, answer every frame (an ack, or `bad_request` for the refused),
store exactly what it accepted, and go on serving everyone else: the fuzzer's own
socket, an editor of another note, and an editor of the fuzzed note on the other
instance, who gets every accepted update relayed."""

import asyncio
import base64
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from notes.models import NoteUpdate
from notes.tests import fuzzing
from realtime.dialects import OPENWEBUI
from testing.cluster import http_get
from testing.editors import RemoteEditor, SandboxedReader
from testing.factories import note_shared, token_for, users_create

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

UPDATES, AWARENESS = 10_000, 2_000
WINDOW = 64  # frames in flight at once
# Peak RSS a server may gain while fuzzed: its document, caches and buffers, not the
# gigabytes a decoder trusting a length would take.
MAX_GROWTH_MB = 150


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def blast(
    editor: RemoteEditor, event: str, inputs: list, encode=b64, **extra
) -> dict:
    """Send every input as `event` (`update` made by `encode`, with `extra` fields)
    with an ack, WINDOW at a time; count the replies by outcome ("ok" or the error
    code)."""
    outcomes: dict[str, int] = {}
    pending: set[asyncio.Future] = set()

    async def one(data) -> None:
        frame = {"document_id": editor.document_id, "update": encode(data), **extra}
        reply = await editor.call(event, frame, timeout=30)
        key = "ok" if "data" in reply else reply["error"]["code"]
        outcomes[key] = outcomes.get(key, 0) + 1

    for data in inputs:
        if len(pending) >= WINDOW:
            done, pending = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
            for future in done:
                future.result()
        pending.add(asyncio.ensure_future(one(data)))
    for future in asyncio.as_completed(pending):
        await future
    return outcomes


# No rate limit, frames as big as a real client's, no compaction while counting rows.
FUZZ_ENV = {
    "FRAME_RATE": 1_000_000,
    "FRAME_BURST": 1_000_000,
    "MAX_FRAME_BYTES": 1024 * 1024,
    "NOTE_COMPACT_THRESHOLD": 10**9,
}


@pytest.fixture
async def team():
    return await users_create("alice", "bob", "carol")


@pytest.mark.cluster_env(**FUZZ_ENV)
@pytest.mark.timeout(600)
async def test_fuzzed_yjs_bytes_never_hurt_a_server(cluster, team):
    alice, bob, carol = team
    corpus = fuzzing.real_updates()
    for index, server in enumerate(reversed(cluster)):  # uvicorn, then daphne
        other = cluster[0] if server is cluster[1] else cluster[1]
        good_id = await note_shared(alice, [], content="precious text")
        fuzz_id = await note_shared(bob, [carol])
        keeper = await RemoteEditor.open(server.ws, alice, good_id)
        watcher = await SandboxedReader.open(other.ws, carol, fuzz_id)
        fuzzer = await RemoteEditor.open(server.ws, bob, fuzz_id)
        before = peak_rss_mb(server.proc.pid)

        updates = list(fuzzing.mutants(corpus, UPDATES, seed=10 + index))
        outcomes = await blast(fuzzer, "ydoc:document:update", updates)
        assert set(outcomes) <= {"ok", "bad_request"}, outcomes
        assert sum(outcomes.values()) == UPDATES
        assert outcomes["ok"] > 500 and outcomes["bad_request"] > 5000, outcomes
        awareness = list(fuzzing.awareness_mutants(AWARENESS, seed=20 + index))
        aware = await blast(fuzzer, "ydoc:awareness:update", awareness)
        assert set(aware) <= {"ok", "bad_request"} and aware.get("bad_request"), aware

        # The process lived, its memory stayed bounded, and it serves as before.
        assert server.proc.poll() is None
        growth = peak_rss_mb(server.proc.pid) - before
        assert growth < MAX_GROWTH_MB, f"peak RSS grew {growth:.0f} MB"
        status, _ = await asyncio.to_thread(
            http_get, f"{server.http}/healthz", token_for(alice)
        )
        assert status == 200
        # Exactly the accepted updates were stored.
        stored = await database_sync_to_async(
            NoteUpdate.objects.filter(note_id=fuzz_id).count
        )()
        assert stored == outcomes["ok"]
        # Everyone else is unharmed: the fuzzer's socket still answers, the other
        # note's editor types on, and the fuzzed note's other editor, on the other
        # instance, got every accepted update relayed, and nothing else.
        await fuzzer.insert(0, "fuzzer still here ")
        await keeper.insert(len("precious text"), "!")
        fresh = await RemoteEditor.open(server.ws, alice, good_id)
        assert fresh.joined_text == keeper.text == "precious text!"
        joiner = await SandboxedReader.open(server.ws, carol, fuzz_id)
        assert "fuzzer still here " in joiner.joined_text
        for _ in range(100):
            if watcher.relayed == outcomes["ok"] + 1:
                break
            await asyncio.sleep(0.1)
        assert watcher.relayed == outcomes["ok"] + 1
        for editor in (keeper, watcher, fuzzer, fresh, joiner):
            await editor.close()
    # No server logged an error, but the CRDT host processes it replaced (what a
    # fuzzed update may do, by design: docs/architecture.md).
    for server in cluster:
        errors = [
            line
            for line in server.log_path.read_text(errors="replace").splitlines()
            if (" ERROR " in line or " CRITICAL " in line)
            and " notes.crdt_proxy " not in line
        ]
        assert errors == [], errors[:5]


OWUI_UPDATES, OWUI_INITIALIZE, OWUI_AWARENESS = 3_000, 300, 1_000


async def stored_count(note_id: str) -> int:
    return await database_sync_to_async(
        NoteUpdate.objects.filter(note_id=note_id).count
    )()


@pytest.mark.cluster_env(**FUZZ_ENV)
@pytest.mark.timeout(600)
async def test_fuzzed_open_webui_shapes_never_hurt_a_server(cluster, team):
    """Open WebUI's shapes: rich-text (XmlFragment) updates and their mutants as int
    lists (some with values no byte has), `initialize` seeds, JSON-bytes awareness.
    Same guarantees; the editors on the other instance, one of each dialect, get
    every accepted update relayed."""
    alice, bob, carol = team
    daphne, uvicorn = cluster
    fuzz_id = await note_shared(bob, [carol])
    owui_watcher = await SandboxedReader.open(daphne.ws, carol, fuzz_id, OPENWEBUI)
    plain_watcher = await SandboxedReader.open(daphne.ws, carol, fuzz_id)
    fuzzer = await SandboxedReader.open(uvicorn.ws, bob, fuzz_id, OPENWEBUI)
    corpus = fuzzing.rich_updates() + fuzzing.real_updates()
    inputs = list(fuzzing.int_lists(list(fuzzing.mutants(corpus, OWUI_UPDATES, 30))))

    def same(values):
        return values

    outcomes = await blast(fuzzer, "ydoc:document:update", inputs, same)
    assert set(outcomes) <= {"ok", "bad_request"}, outcomes
    assert sum(outcomes.values()) == OWUI_UPDATES
    assert outcomes["ok"] > 200 and outcomes["bad_request"] > 1500, outcomes
    assert await stored_count(fuzz_id) == outcomes["ok"]
    # Seeds on a document with content: answered with the state, never stored.
    seeds = inputs[:OWUI_INITIALIZE]
    seeded = await blast(fuzzer, "ydoc:document:update", seeds, same, initialize=True)
    assert set(seeded) <= {"ok", "bad_request"}, seeded
    assert await stored_count(fuzz_id) == outcomes["ok"]
    aware = await blast(
        fuzzer,
        "ydoc:awareness:update",
        list(fuzzing.json_awareness_mutants(OWUI_AWARENESS)),
        list,
    )
    assert set(aware) <= {"ok", "bad_request"}, aware
    assert aware.get("ok") and aware.get("bad_request"), aware

    assert uvicorn.proc.poll() is None
    status, _ = await asyncio.to_thread(
        http_get, f"{uvicorn.http}/healthz", token_for(alice)
    )
    assert status == 200
    # The fuzzer's socket still works, and both watchers got every accepted update.
    last = list(fuzzing.rich_updates(seed=99)[-1])
    reply = await fuzzer.call(
        "ydoc:document:update", {"document_id": fuzzer.document_id, "update": last}
    )
    assert "data" in reply, reply
    for watcher in (owui_watcher, plain_watcher):
        for _ in range(100):
            if watcher.relayed == outcomes["ok"] + 1:
                break
            await asyncio.sleep(0.1)
        assert watcher.relayed == outcomes["ok"] + 1
    joiner = await SandboxedReader.open(uvicorn.ws, carol, fuzz_id, OPENWEBUI)
    assert joiner.joined_text is not None
    for editor in (owui_watcher, plain_watcher, fuzzer, joiner):
        await editor.close()
