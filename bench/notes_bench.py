"""Collaborative notes benchmark: join cost with a long history, and update relay.

    .venv/bin/python bench/notes_bench.py --history 10000 --clients 1500 --documents 500

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
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import (  # noqa: E402
    add_service_args,
    drop_database,
    percentile,
    prepare_database,
)

# The relay phases, one after the other on the same sockets: document updates (checked,
# stored durably, then relayed) and awareness updates (relayed only, no database).
EVENTS = ("ydoc:document:update", "ydoc:awareness:update")


# (event, send time, latency ms) of every delivery, for --timeline.
TRACE: list[tuple[str, float, float]] = []


def print_timeline(trace) -> None:
    """Deliveries, p50 and p99 per half second of send time: shows stalls, and
    senders falling into step."""
    t0 = min(t for _, t, _ in trace)
    buckets: dict[tuple[str, int], list[float]] = {}
    for event, t, ms in trace:
        buckets.setdefault((event, int((t - t0) * 2)), []).append(ms)
    print("| event | from s | deliveries | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for (event, half), samples in sorted(buckets.items(), key=lambda kv: kv[0][1]):
        print(
            f"| {event} | {half / 2:.1f} | {len(samples)} |"
            f" {statistics.median(samples):.1f} | {percentile(samples, 99):.1f} |"
        )


def configure(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")
    import django

    django.setup()


def build_history(note, count: int, compact: bool) -> None:
    from notes import crdt, services

    doc = crdt.doc_from(services.document_updates(note=note))
    for i in range(count):
        update = crdt.text_update(doc, crdt.doc_text(doc) + f"{i % 10}")
        seq = services.update_store(note=note, update=update, author_id=None)
        if compact and seq % 25 == 0:
            services.compact_if_needed(note_id=note.id)


def time_state(note, runs: int = 50) -> float:
    from notes import services

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        services.document_merged(note=note)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def median_us(function, runs: int) -> float:
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
    import websockets

    samples = []
    async with websockets.connect(url) as ws:
        await ws.send(
            json.dumps({"event": "connect", "data": {"token": token}, "ack": 0})
        )
        await ws.recv()
        for i in range(runs):
            start = time.perf_counter()
            await ws.send(
                json.dumps(
                    {
                        "event": "ydoc:document:join",
                        "data": {"document_id": document_id},
                        "ack": i + 1,
                    }
                )
            )
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("ack") == i + 1:
                    break
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def relay(url, members, interval: float, seconds: float, on_start=None):
    """members: list of (document_id, [token, ...]); the first token writes. Writers
    start once every member has joined, so the connect storm is not measured."""
    import pycrdt
    import websockets

    from notes.yjs_format import awareness_update

    sent: dict[str, float] = {}
    latencies: dict[str, list[float]] = {event: [] for event in EVENTS}
    trace = TRACE

    async def member(document_id, token, writer, ready):
        try:
            await member_run(document_id, token, writer, ready)
        finally:
            ready.set()  # a member that failed must not hold the others back

    async def member_run(document_id, token, writer, ready):
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.send(
                json.dumps({"event": "connect", "data": {"token": token}, "ack": 0})
            )
            await ws.recv()
            join = {
                "event": "ydoc:document:join",
                "data": {"document_id": document_id},
                "ack": 1,
            }
            await ws.send(json.dumps(join))
            while json.loads(await ws.recv()).get("ack") != 1:
                pass
            ready.set()
            await everyone.wait()
            if writer:
                doc = pycrdt.Doc()
                text = doc.get("content", type=pycrdt.Text)
                loop = asyncio.get_running_loop()
                # Independent writers: each at its own phase in the interval (all at
                # once would measure how long a burst of 500 takes to drain), on a
                # fixed timetable, so a stall does not leave them sending in step.
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
    return latencies, len(sent)


def main() -> None:
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

    db_env = prepare_database(args)
    env = {
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": f"rt-bench-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
        "FRAME_RATE": "100000",
        "FRAME_BURST": "100000",
        **{k: v for k, v in db_env.items() if not k.startswith("_")},
    }
    configure(env)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from rest_framework_simplejwt.tokens import AccessToken

    from notes import services
    from realtime.launcher import ServerProcess, free_port
    from realtime.models import User

    server = None
    rows = []
    try:
        call_command("migrate", verbosity=0)
        owner = User.objects.create(username="bench-owner", role="admin")
        compacted = services.note_create(owner=owner, title="compacted")
        build_history(compacted, args.history, compact=True)
        raw = services.note_create(owner=owner, title="raw log")
        build_history(raw, args.history, compact=False)
        rows.append(("history", f"{args.history} updates"))
        rows.extend(check_costs(compacted))
        rows.append(
            (
                "join state, compacted (server, median)",
                f"{time_state(compacted):.2f} ms",
            )
        )
        rows.append(
            ("join state, whole log (server, median)", f"{time_state(raw, 5):.1f} ms")
        )
        env["SECRET_KEY"] = settings.SECRET_KEY
        server = ServerProcess(port=free_port(), env=env, server="uvicorn").start()
        token = str(AccessToken.for_user(owner))
        trip = asyncio.run(join_round_trip(server.ws, token, f"note:{compacted.id}"))
        rows.append(
            ("ydoc:document:join round trip (client, median)", f"{trip:.2f} ms")
        )
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
        latencies, sent = asyncio.run(
            relay(server.ws, members, args.interval, args.seconds, profile)
        )
        rows.append(
            (
                "relay clients / documents",
                f"{per_doc * args.documents} / {args.documents}",
            )
        )
        rows.append(("frames sent (both phases)", f"{sent}"))
        for event, samples in latencies.items():
            if samples:
                rows.append(
                    (
                        f"{event} relay: deliveries, p50 / p99 / max",
                        f"{len(samples)}, {statistics.median(samples):.1f}"
                        f" / {percentile(samples, 99):.1f} / {max(samples):.1f} ms",
                    )
                )
    finally:
        if server is not None:
            server.terminate()
        drop_database(args, db_env)
    if args.timeline and TRACE:
        print_timeline(TRACE)
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
