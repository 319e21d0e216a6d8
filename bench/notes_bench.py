"""Collaborative notes benchmark: join cost with a long history, and update relay.

    .venv/bin/python bench/notes_bench.py --history 10000 --clients 1500 --documents 500

1. Join: a note gets `--history` updates through the same services the socket path
   uses (compaction checked every 25 updates, as there). Reported: the server-side time
   to build the joiner's state (median of 50) with compaction, and without it (the
   whole log replayed); and the client-observed ydoc:document:join round trip against
   a real uvicorn server.
2. Relay: `--clients` sockets in `--documents` documents (Redis layer, PostgreSQL).
   In every document one client sends an update per `--interval` seconds; latency runs
   from just before the send to the moment each other member receives it.
"""

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stream_bench import drop_database, percentile, prepare_database  # noqa: E402


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
        services.document_state(note=note)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


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


async def relay(url, members, interval: float, seconds: float):
    """members: list of (document_id, [token, ...]); the first token writes."""
    import websockets
    import y_py as Y

    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def member(document_id, token, writer, ready):
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
            if writer:
                doc = Y.YDoc()
                loop = asyncio.get_running_loop()
                end = loop.time() + seconds
                n = 0
                while loop.time() < end:
                    await asyncio.sleep(interval)
                    before = Y.encode_state_vector(doc)
                    with doc.begin_transaction() as txn:
                        doc.get_text("content").insert(txn, 0, "x")
                    update = base64.b64encode(
                        Y.encode_state_as_update(doc, before)
                    ).decode()
                    sent[update + document_id] = time.time()
                    n += 1
                    frame = {
                        "event": "ydoc:document:update",
                        "data": {"document_id": document_id, "update": update},
                        "ack": 10 + n,
                    }
                    await ws.send(json.dumps(frame))
                await asyncio.sleep(1.0)
            else:
                try:
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), seconds + 5)
                        now = time.time()
                        if '"ydoc:document:update"' in raw:
                            data = json.loads(raw)["data"]
                            start = sent.get(data["update"] + document_id)
                            if start is not None:
                                latencies.append((now - start) * 1000)
                except (TimeoutError, websockets.ConnectionClosed):
                    pass

    tasks, readies = [], []
    for document_id, tokens in members:
        for i, token in enumerate(tokens):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(member(document_id, token, i == 0, ready)))
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, len(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1500)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--database", choices=["postgres", "sqlite"], default="postgres"
    )
    parser.add_argument(
        "--postgres-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    db_env = prepare_database(args, {})
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
        latencies, sent = asyncio.run(
            relay(server.ws, members, args.interval, args.seconds)
        )
        rows.append(
            (
                "relay clients / documents",
                f"{per_doc * args.documents} / {args.documents}",
            )
        )
        rows.append(
            ("updates sent / deliveries measured", f"{sent} / {len(latencies)}")
        )
        if latencies:
            rows.append(
                (
                    "relay latency p50 / p99 / max",
                    f"{statistics.median(latencies):.1f}"
                    f" / {percentile(latencies, 99):.1f} / {max(latencies):.1f} ms",
                )
            )
    finally:
        if server is not None:
            server.terminate()
        drop_database(args, db_env)
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
