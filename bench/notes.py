"""Collaborative notes benchmark: join cost with a long history, and update relay.

    .venv/bin/python -m bench.notes --history 10000 --clients 1500 --documents 500

0. Checks: what the server spends per update on bytes from a client before storing
   them: the structural walk (notes/yjs_format.py, pure Python) and the apply in the
   CRDT host process (one round trip to the child), for a keystroke, a paste and a
   whole 10,000-update state; beside them, pycrdt decoding the same bytes in process
   (what the check in front of it costs relative to the decoder itself).
1. Join: a note gets `--history` updates through the same services the socket path
   uses (compaction checked every 25 updates, as there). Reported: the server-side time
   to build the joiner's state (median of 50) with compaction, and without it (the
   whole log replayed), both in the CRDT host; and the client-observed
   ydoc:document:join round trip against a real uvicorn server.
2. Relay: `--clients` sockets in `--documents` documents (Redis layer, PostgreSQL).
   In every document one client sends an update per `--interval` seconds, starting at
   a random moment within the first interval; latency runs from just before the send
   to the moment each other member receives it. Writers start once everyone joined.
   Then the same for `ydoc:awareness:update` (relayed only, no database): the cost of
   the transport alone under the same load.
"""

import argparse
import asyncio
import base64
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import add_service_args, percentile, request, run_services, signed_in
from bench.report import measure_table, timeline_table

# The relay phases, one after the other on the same sockets: document updates (checked,
# stored durably, then relayed) and awareness updates (relayed only, no database).
EVENTS = ("ydoc:document:update", "ydoc:awareness:update")


def build_history(note, count: int, compact: bool) -> None:
    """`count` one-character updates to a note through the socket path's services."""
    from notes import crdt, services

    doc = crdt.doc_from(services.document_updates(note=note))
    for i in range(count):
        update = crdt.text_update(doc, crdt.doc_text(doc) + f"{i % 10}")
        seq = services.update_store(note=note, update=update, author_id=None)
        if compact and seq % 25 == 0:
            services.compact_if_needed(note_id=note.id)


def time_state(note, runs: int = 50) -> float:
    """Median ms to build a joiner's state of the note (server side)."""
    from notes import services

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        services.document_merged(note=note)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def median_us(function, runs: int) -> float:
    """Median µs of a call."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def check_costs(note) -> list[tuple[str, str]]:
    """Per-update cost of the checks on client bytes, in microseconds (median)."""
    import pycrdt

    from notes import crdt, crdt_proxy, services

    state, _, _ = services.document_merged(note=note)
    doc = crdt.doc_from([state])
    keystroke = crdt.text_update(doc, crdt.doc_text(doc) + "x")
    paste = crdt.text_update(doc, crdt.doc_text(doc) + "lorem ipsum " * 90)
    host = crdt_proxy.CrdtHost("bench")
    host.call("apply", "doc", [state], True)
    rows = []
    for name, update in (("keystroke", keystroke), ("paste", paste), ("state", state)):
        walk = median_us(lambda u=update: crdt_proxy.update_check(u), 2000)
        apply = median_us(lambda u=update: host.call("apply", "doc", [u], True), 500)
        native = median_us(lambda u=update: pycrdt.Doc().apply_update(u), 500)
        rows.append(
            (
                f"check of a {name} ({len(update):,} B): walk / host apply /"
                " pycrdt in process",
                f"{walk:.1f} / {apply:.1f} / {native:.1f} us",
            )
        )
    host.close()
    return rows


async def join_round_trip(
    url: str, token: str, document_id: str, runs: int = 20
) -> float:
    """Median ms from sending ydoc:document:join to its ack, at a real client."""
    samples = []
    async with signed_in(url, token) as ws:
        for i in range(runs):
            start = time.perf_counter()
            await request(ws, "ydoc:document:join", {"document_id": document_id}, i + 1)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def relay(url, members, interval: float, seconds: float, on_start=None):
    """members: list of (document_id, [token, ...]); the first token writes. Writers
    start once every member has joined, so the connect storm is not measured.
    Returns the latencies per event, the frames sent, and (event, send time,
    latency ms) of every delivery."""
    import pycrdt
    import websockets

    from notes.yjs_format import awareness_update

    sent: dict[str, float] = {}
    latencies: dict[str, list[float]] = {event: [] for event in EVENTS}
    trace: list[tuple[str, float, float]] = []

    async def member(document_id, token, writer, ready):
        try:
            await member_run(document_id, token, writer, ready)
        finally:
            ready.set()  # a member that failed must not hold the others back

    async def member_run(document_id, token, writer, ready):
        async with signed_in(url, token, max_queue=None) as ws:
            await request(ws, "ydoc:document:join", {"document_id": document_id}, 1)
            ready.set()
            await everyone.wait()
            if writer:
                await write(ws, document_id)
                # Stay until every writer is done: the sockets closing are not part
                # of the measurement.
                writers_done.append(document_id)
                while len(writers_done) < len(members):
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
            else:
                try:
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), seconds + 5)
                        now = time.time()
                        frame = json.loads(raw)
                        if frame.get("event") in latencies:
                            data = frame["data"]
                            start = sent.get(data["update"] + document_id)
                            if start is not None:
                                latencies[frame["event"]].append((now - start) * 1000)
                                trace.append(
                                    (frame["event"], start, (now - start) * 1000)
                                )
                except (TimeoutError, websockets.ConnectionClosed):
                    pass

    async def write(ws, document_id) -> None:
        doc = pycrdt.Doc()
        text = doc.get("content", type=pycrdt.Text)
        loop = asyncio.get_running_loop()
        # Independent writers: each at its own phase in the interval (all at once
        # would measure how long a burst of 500 takes to drain), on a fixed
        # timetable, so a stall does not leave them sending in step.
        at = loop.time() + random.uniform(0, interval)
        n = 0
        for event in EVENTS:
            end = at + seconds
            while at < end:
                at += interval
                await asyncio.sleep(max(0.0, at - loop.time()))
                n += 1
                if event == "ydoc:document:update":
                    before = doc.get_state()
                    text.insert(0, "x")
                    payload = doc.get_update(before)
                else:
                    payload = awareness_update(
                        doc.client_id, n, json.dumps({"cursor": {"anchor": n}})
                    )
                update = base64.b64encode(bytes(payload)).decode()
                sent[update + document_id] = time.time()
                frame = {
                    "event": event,
                    "data": {"document_id": document_id, "update": update},
                    "ack": 10 + n,
                }
                await ws.send(json.dumps(frame))

    everyone = asyncio.Event()
    writers_done: list[str] = []
    tasks, readies = [], []
    for document_id, tokens in members:
        for i, token in enumerate(tokens):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(member(document_id, token, i == 0, ready)))
    await asyncio.gather(*(r.wait() for r in readies))
    # The load generator's own garbage collector would pause every socket of it at
    # once (1,500 sockets' objects): it does not run while measuring.
    gc.collect()
    gc.disable()
    if on_start is not None:
        on_start()
    everyone.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    gc.enable()
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        print(f"{len(failed)} of {len(tasks)} sockets failed, e.g. {failed[0]!r}")
    return latencies, len(sent), trace


def history_rows(args, owner) -> tuple[object, list[tuple[str, str]]]:
    """Phases 0 and 1 on the server side: a compacted note and a raw log of
    `--history` updates, the checks' costs, and the time to build a joiner's state.
    Returns the compacted note and the rows."""
    from notes import services

    compacted = services.note_create(owner=owner, title="compacted")
    build_history(compacted, args.history, compact=True)
    raw = services.note_create(owner=owner, title="raw log")
    build_history(raw, args.history, compact=False)
    rows = [("history", f"{args.history} updates")]
    rows.extend(check_costs(compacted))
    rows.append(
        ("join state, compacted (server, median)", f"{time_state(compacted):.2f} ms")
    )
    rows.append(
        ("join state, whole log (server, median)", f"{time_state(raw, 5):.1f} ms")
    )
    return compacted, rows


def relay_members(args, owner) -> list[tuple[str, list[str]]]:
    """The relay's documents, each with the tokens of the users that open it."""
    from rest_framework_simplejwt.tokens import AccessToken

    from notes import services
    from realtime.models import User

    per_doc = max(2, args.clients // args.documents)
    users = [User(username=f"bench-{i}") for i in range(per_doc)]
    User.objects.bulk_create(users)
    users = list(
        User.objects.filter(username__startswith="bench-").exclude(id=owner.id)
    )
    tokens = [str(AccessToken.for_user(u)) for u in users]
    members = []
    for _ in range(args.documents):
        note = services.note_create(owner=owner, title="relay")
        for u in users:
            services.note_grant(note=note, user_id=u.id, permission="write")
        members.append((f"note:{note.id}", tokens[:per_doc]))
    return members


def relay_rows(args, members, server) -> tuple[list[tuple[str, str]], list]:
    """Phase 2: the relay of both events; its rows and its trace."""
    from django.db import connection

    def profile() -> None:
        if args.profile:
            subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p"]
                + [str(server.proc.pid), "-d", str(int(args.seconds))]
                + ["-f", "raw", "-o", args.profile, "--nonblocking", "--gil"]
            )

    # Fresh tables have no planner statistics until autovacuum's first ANALYZE,
    # which lands mid-run; a database in service has them.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    latencies, sent, trace = asyncio.run(
        relay(server.ws, members, args.interval, args.seconds, profile)
    )
    clients = sum(len(tokens) for _, tokens in members)
    rows = [
        ("relay clients / documents", f"{clients} / {len(members)}"),
        ("frames sent (both phases)", f"{sent}"),
    ]
    for event, samples in latencies.items():
        if samples:
            rows.append(
                (
                    f"{event} relay: deliveries, p50 / p99 / max",
                    f"{len(samples)}, {statistics.median(samples):.1f}"
                    f" / {percentile(samples, 99):.1f} / {max(samples):.1f} ms",
                )
            )
    return rows, trace


def main() -> None:
    """Command line: every phase in turn, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1500)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    add_service_args(parser)
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="also print p50/p99 per half second of the relay",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server with py-spy (pip install py-spy) during the first"
        " relay phase, as collapsed stacks in FILE",
    )
    args = parser.parse_args()

    settings_env = {"FRAME_RATE": "100000", "FRAME_BURST": "100000"}
    with run_services(args, name="bench", **settings_env) as env:
        from rest_framework_simplejwt.tokens import AccessToken

        from realtime.launcher import ServerProcess, free_port
        from realtime.models import User

        owner = User.objects.create(username="bench-owner", role="admin")
        compacted, rows = history_rows(args, owner)
        server = ServerProcess(port=free_port(), env=env, server="uvicorn").start()
        try:
            token = str(AccessToken.for_user(owner))
            trip = asyncio.run(
                join_round_trip(server.ws, token, f"note:{compacted.id}")
            )
            rows.append(
                ("ydoc:document:join round trip (client, median)", f"{trip:.2f} ms")
            )
            relay, trace = relay_rows(args, relay_members(args, owner), server)
            rows += relay
        finally:
            server.terminate()
    if args.timeline and trace:
        print(timeline_table(trace))
    print(measure_table(rows))


if __name__ == "__main__":
    main()
