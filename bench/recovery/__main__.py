"""Command line of bench.recovery (see the package's docstring)."""

import argparse
import asyncio
import json
import random
import time

from bench.harness import (
    add_service_args,
    cpu_seconds,
    plan_files,
    run_module,
    run_services,
)
from bench.recovery import __doc__ as DOC
from bench.recovery.client import CATCH_UP_TIMEOUT, Reader, churn
from bench.recovery.tally import report_rows, tally
from bench.report import measure_table
from bench.scale.clients import gather_limited


async def run_clients(plan, ports, args, env, worker_args):
    """Connect everyone, stream with churn, wait until every client has it all."""
    from realtime.rooms import user_room
    from realtime.state import get_state

    rng = random.Random(args.seed)
    readers = [Reader(entry=e, room=user_room(e["user_id"])) for e in plan]
    await gather_limited(
        [
            r.connect(ports[i % len(ports)], recover=False)
            for i, r in enumerate(readers)
        ],
        50,
    )
    clients_cpu0 = time.process_time()
    worker = await run_module("bench.stream", "--worker", *worker_args, env=env)
    stop = asyncio.Event()
    churner = asyncio.create_task(churn(readers, args, ports, rng, stop))
    code = await worker.wait()
    stop.set()
    await churner
    tops = await get_state().history_top(rooms=[r.room for r in readers])
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while time.monotonic() < deadline and not all(
        r.up and r.top >= tops[r.room][1] and r._replay_to is None for r in readers
    ):
        await asyncio.sleep(0.05)
    clients_cpu = time.process_time() - clients_cpu0
    for reader in readers:
        reader.sock.close()
    return readers, tops, code, clients_cpu


def run(args) -> dict:
    """Seed, start two instances, stream through them with churn; the results."""
    from bench.stream import seed
    from realtime.launcher import Fleet

    settings_env = {
        "STREAM_FLUSH_INTERVAL": "0.25",
        "FRAME_RATE": "100000",
        "FRAME_BURST": "100000",
        "WORKER_IN_PROCESS": "false",
    }
    with run_services(args, name="recovery", **settings_env) as env:
        from chats.models import Message

        plan = seed(args.streams)
        fleet = Fleet(env=env, servers=["uvicorn", "uvicorn"], worker=False).start()
        try:
            ports = [p.port for p in fleet.instances]
            pids = [p.proc.pid for p in fleet.instances]
            tokens = round(args.rate * args.seconds)
            plan_path, out_path = plan_files(
                {"streams": plan, "tps": args.rate, "tokens": tokens}
            )
            cpu0, wall0 = [cpu_seconds(p) for p in pids], time.monotonic()
            readers, tops, code, clients_cpu = asyncio.run(
                run_clients(plan, ports, args, env, [str(plan_path), str(out_path)])
            )
            wall = time.monotonic() - wall0
            server_cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        finally:
            fleet.stop()
        stored = dict(
            Message.objects.filter(
                message_id__in=[e["message_id"] for e in plan]
            ).values_list("message_id", "content")
        )
    return {
        "readers": readers,
        "tops": tops,
        "stored": stored,
        "worker_code": code,
        "worker": json.loads(out_path.read_text()) if out_path.exists() else {},
        "tokens": tokens,
        "server_cpu": server_cpu,
        "clients_cpu": clients_cpu,
        "wall": wall,
    }


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=DOC.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="deltas/s a stream")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--churn", type=float, default=0.2, help="fraction reset each second"
    )
    parser.add_argument(
        "--jitter", type=float, default=0.5, help="max seconds before coming back"
    )
    parser.add_argument("--seed", type=int, default=16)
    add_service_args(parser)
    args = parser.parse_args()
    result = run(args)
    print(measure_table(report_rows(args, result)))
    totals = tally(result)
    if totals["errors"]:
        print(f"\nfirst errors: {totals['errors'][:3]}")
    for anomaly in totals["anomalies"][:10]:
        print(f"duplicate or out of order: {anomaly}")


if __name__ == "__main__":
    main()
