"""Scale benchmark: this project against python-socketio with its AsyncRedisManager,
and a raw `websockets` broadcast server as the ceiling, in one run on one machine.

    .venv/bin/python -m bench.scale            # full scale, about 5 minutes
    .venv/bin/python -m bench.scale --json out.json --targets socketio,ceiling

Targets (bench/scale/targets.py): `ours-uvicorn`, `ours-daphne` (this project under
each ASGI server), `socketio` (bench/socketio_server.py under uvicorn) and `ceiling`
(bench/ws_server.py). Every target gets the same scenarios (bench/scale/scenarios.py:
connects, memory per connection, fan-out on one and two instances, CPU for a room
without members, chat streaming), over the real Redis and a fresh PostgreSQL
database. Clients are bench/rawws.py sockets, all in this process.
"""

import argparse
import sys

from bench.harness import add_scale_args, add_service_args, run_services
from bench.report import scale_table, write_json
from bench.scale.scenarios import ROOM, run_on_new_loop, run_target, seed_users
from bench.scale.targets import TARGETS


def run(args, targets: list[str]) -> dict:
    """Every scenario against every target, one target after the other."""
    results: dict = {}
    with run_services(args, name="scale") as env:
        users = seed_users(max(args.clients, args.streams))
        for name in targets:
            target = TARGETS[name](
                name=name,
                env=env,
                redis_url=args.redis_url,
                channel=f"{env['REDIS_KEY_PREFIX']}-socketio",
            )
            print(f"== {name}", file=sys.stderr, flush=True)
            results[name] = run_on_new_loop(run_target(target, users, args, env))
    return results


def main() -> None:
    """Command line: the targets to run, the scale, the services."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    add_scale_args(parser)
    parser.add_argument("--solo-clients", type=int, default=100)
    parser.add_argument("--solo-messages", type=int, default=2000)
    add_service_args(parser)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")

    results = run(args, targets)
    from django.conf import settings

    fanout = results.get("ours-uvicorn", {}).get("fanout_1", {})
    scale = (
        f"{args.clients} clients, {args.messages} messages; {args.streams} streams "
        f"x {args.tps:g}/s x {args.tokens} tokens; database {args.database}; "
        f"HISTORY_ROOM_KINDS={','.join(settings.HISTORY_ROOM_KINDS)}"
        f" (fan-out room {ROOM!r} events positioned: {fanout.get('positioned')})"
    )
    print(f"{scale}\n\n{scale_table(results, [t for t in TARGETS if t in results])}")
    if args.json:
        write_json(args.json, scale, results)


if __name__ == "__main__":
    main()
