"""Chat streaming benchmark: N concurrent generations at T tokens/s to live clients.

    .venv/bin/python -m bench.stream --streams 200 --tps 50 --tokens 250

Three processes on this machine, over the real Redis and database:
  server  one uvicorn (or daphne) instance; every client socket is connected to it
  worker  runs N event emitters (realtime server code on another instance), pacing
          deltas at T tokens/s and finishing with chat:completion; persists to the DB
  clients this process: N authenticated WebSocket clients, one per user

Reports emitter-to-client latency (worker clock just before emit() to client receive,
same machine clock), DB writes per message (UPDATE/INSERT statements on chats_message
counted on the worker's connections) against duration / STREAM_FLUSH_INTERVAL + 2,
and the CPU used by the server and the worker.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from bench.harness import (
    add_service_args,
    cpu_seconds,
    percentile,
    plan_files,
    run_module,
    run_services,
    signed_in,
)
from bench.report import measure_table

# --- worker -------------------------------------------------------------------------


async def worker_main(plan_path: str, out_path: str) -> None:
    """The worker process: every stream's emitter, paced; writes what it sent."""
    import django

    django.setup()
    from channels.db import database_sync_to_async

    from chats.emitter import get_event_emitter
    from chats.writecount import MessageWriteCounter

    plan = json.loads(Path(plan_path).read_text())
    writes = MessageWriteCounter().start()
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    layer_sends = {"messages": 0, "items": 0}
    real_send = layer.send

    async def counting_send(channel, message):
        layer_sends["messages"] += 1
        layer_sends["items"] += len(message.get("items", ()))
        await real_send(channel, message)

    layer.send = counting_send
    await database_sync_to_async(lambda: None)()  # warm the DB thread
    sent: dict[str, list[float]] = {}
    delay = 1.0 / plan["tps"]

    async def stream(entry: dict, start: float) -> None:
        emit = get_event_emitter(
            entry["user_id"], entry["chat_id"], entry["message_id"]
        )
        times = sent[entry["message_id"]] = []
        loop = asyncio.get_running_loop()
        pieces = []
        for i in range(plan["tokens"]):
            await asyncio.sleep(max(0.0, start + (i + 1) * delay - loop.time()))
            piece = f"t{i} "
            pieces.append(piece)
            times.append(time.time())
            await emit({"type": "message", "data": {"content": piece}})
        await emit(
            {
                "type": "chat:completion",
                "data": {"done": True, "content": "".join(pieces)},
            }
        )

    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    # Spread the streams' phases over one token interval, as real generations are.
    began = time.time()
    await asyncio.gather(
        *(
            stream(entry, start + delay * i / len(plan["streams"]))
            for i, entry in enumerate(plan["streams"])
        )
    )
    Path(out_path).write_text(
        json.dumps(
            {
                "sent": sent,
                "writes": writes.n,
                "duration": time.time() - began,
                "cpu": cpu_seconds(os.getpid()),
                "layer_messages": layer_sends["messages"],
                "layer_items": layer_sends["items"],
            }
        )
    )


# --- orchestrator ---------------------------------------------------------------------


def seed(streams: int) -> list[dict]:
    """Users, chats and assistant message rows (as the completions view makes them)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from chats.models import Chat, Message
    from realtime.models import User

    plan = []
    for i in range(streams):
        user = User.objects.create(username=f"bench{i}", name=f"Bench {i}")
        chat = Chat.objects.create(owner=user)
        message = Message.objects.create(chat=chat, role="assistant")
        plan.append(
            {
                "user_id": user.id,
                "chat_id": chat.id,
                "message_id": message.message_id,
                "token": str(AccessToken.for_user(user)),
            }
        )
    return plan


async def run_clients(url: str, plan: list[dict], worker_args: list[str], env: dict):
    """Connect every client, start the worker, collect receive times."""
    received: dict[str, list[float]] = {e["message_id"]: [] for e in plan}
    done = asyncio.Event()
    finished = {"n": 0}

    async def client(entry: dict, ready: asyncio.Event) -> None:
        async with signed_in(url, entry["token"], max_queue=None) as ws:
            ready.set()
            times = received[entry["message_id"]]
            async for raw in ws:
                now = time.time()
                # Cheap checks keep the measuring side from adding its own delay;
                # frames are compact JSON from the server.
                if '"type":"message"' in raw:
                    times.append(now)
                elif '"type":"chat:completion"' in raw:
                    finished["n"] += 1
                    if finished["n"] == len(plan):
                        done.set()
                    return

    readies = [asyncio.Event() for _ in plan]
    tasks = [
        asyncio.create_task(client(e, r)) for e, r in zip(plan, readies, strict=True)
    ]
    deadline = time.monotonic() + 60
    while not all(r.is_set() for r in readies):
        failed = [t.exception() for t in tasks if t.done() and t.exception()]
        if failed or time.monotonic() > deadline:
            ready = sum(r.is_set() for r in readies)
            raise SystemExit(f"{ready}/{len(plan)} clients connected: {failed[:1]}")
        await asyncio.sleep(0.05)
    worker = await run_module("bench.stream", "--worker", *worker_args, env=env)
    clients_cpu0 = time.process_time()
    code = await worker.wait()
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    except TimeoutError:
        got = sum(len(v) for v in received.values())
        raise SystemExit(
            f"worker exited {code}; {finished['n']}/{len(plan)} streams finished, "
            f"{got} deltas received"
        ) from None
    await asyncio.gather(*tasks, return_exceptions=True)
    clients_cpu = time.process_time() - clients_cpu0
    return received, clients_cpu


def run(args) -> dict:
    """Seed, start the server, stream through it; what each side measured."""
    settings_env = {
        "STREAM_FLUSH_INTERVAL": str(args.flush_interval),
        "FRAME_RATE": "100000",
        "FRAME_BURST": "100000",
    }
    with run_services(args, name="bench", **settings_env) as env:
        from realtime.launcher import ServerProcess, free_port

        plan = seed(args.streams)
        server = ServerProcess(port=free_port(), env=env, server=args.server).start()
        try:
            plan_path, out_path = plan_files(
                {"streams": plan, "tps": args.tps, "tokens": args.tokens}
            )
            server_cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
            received, clients_cpu = asyncio.run(
                run_clients(server.ws, plan, [str(plan_path), str(out_path)], env)
            )
            wall = time.monotonic() - wall0
            server_cpu = cpu_seconds(server.proc.pid) - server_cpu0
        finally:
            server.terminate()
    return {
        "worker": json.loads(out_path.read_text()),
        "received": received,
        "clients_cpu": clients_cpu,
        "server_cpu": server_cpu,
        "wall": wall,
    }


def report_rows(args, run: dict) -> list[tuple[str, str]]:
    """The measure/value rows of the report."""
    result, received = run["worker"], run["received"]
    latencies, steady, missing = [], [], 0
    for message_id, sent in result["sent"].items():
        got = received[message_id]
        missing += len(sent) - len(got)
        for s_time, r_time in zip(sent, got, strict=False):
            latencies.append((r_time - s_time) * 1000)
            # After each stream's first second: without its start-up (ownership
            # check and row lookup, all streams starting in the same instant).
            if s_time - sent[0] >= 1.0:
                steady.append((r_time - s_time) * 1000)
    duration = args.tokens / args.tps
    bound = duration / args.flush_interval + 2
    writes_per_message = result["writes"] / args.streams
    server_cpu, wall = run["server_cpu"], run["wall"]
    return [
        (
            "streams x tokens/s",
            f"{args.streams} x {args.tps:g} ({args.tokens} tokens each)",
        ),
        ("server / database / layer", f"{args.server} / {args.database} / redis"),
        ("deltas delivered", f"{len(latencies)} (missing {missing})"),
        (
            "latency p50 / p99 / max (ms)",
            f"{statistics.median(latencies):.1f} / {percentile(latencies, 99):.1f}"
            f" / {max(latencies):.1f}",
        ),
        (
            "steady-state p50 / p99 (ms)",
            f"{statistics.median(steady):.1f} / {percentile(steady, 99):.1f}"
            if steady
            else "n/a (streams shorter than 1 s)",
        ),
        ("DB writes per message", f"{writes_per_message:.1f} (bound {bound:.0f})"),
        (
            "server CPU",
            f"{server_cpu:.1f} s in {wall:.1f} s"
            f" ({100 * server_cpu / wall:.0f}% of a core)",
        ),
        ("worker CPU", f"{result['cpu']:.1f} s"),
        (
            "layer messages from the worker",
            f"{result['layer_messages']} carrying {result['layer_items']} events",
        ),
        ("clients CPU", f"{run['clients_cpu']:.1f} s"),
        (
            "worker run time",
            f"{result['duration']:.1f} s for {duration:.1f} s of tokens",
        ),
    ]


def main() -> None:
    """Command line: the benchmark, or (--worker, internal) its worker process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=250)
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    add_service_args(parser)
    parser.add_argument("--flush-interval", type=float, default=0.25)
    parser.add_argument(
        "--worker", nargs=2, metavar=("PLAN", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.worker:
        if os.environ.get("BENCH_PROFILE"):  # a cProfile dump of the worker
            import cProfile

            cProfile.runctx(
                "asyncio.run(worker_main(*args.worker))",
                globals(),
                {"args": args, "asyncio": asyncio, "worker_main": worker_main},
                os.environ["BENCH_PROFILE"],
            )
        else:
            asyncio.run(worker_main(*args.worker))
        return
    print(measure_table(report_rows(args, run(args))))


if __name__ == "__main__":
    main()
