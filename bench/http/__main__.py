"""HTTP transport benchmark: the same scenarios over WebSockets and over the HTTP
transport, in one run, against the same server setup.

    .venv/bin/python -m bench.http                 # full scale, about 2.5 minutes
    .venv/bin/python -m bench.http --transports http,ws --json out.json

In `--rounds` rounds (the order of the transports flipped each round; the report
gives every phase and the medians), for each transport in turn: a fresh one-instance
fleet (uvicorn, or --server daphne) over the real Redis and a fresh PostgreSQL
database, users of its own, and bench.scale's one-instance scenarios
(bench/scale/scenarios.py): `--clients` connects, memory per idle connection, fan-out
of `--messages` room emits to every client, then streaming from an emitter process
(`--streams` user rooms x `--tps` events/s). WebSocket clients
are bench/rawws.py, HTTP sessions bench/rawhttp.py, all in this process; the server
is a process of its own.
"""

import argparse
import sys

from bench.harness import (
    add_round_args,
    add_scale_args,
    add_service_args,
    measured_phase,
    run_services,
)
from bench.http.target import OursHttp
from bench.report import (
    LOAD_ROWS,
    STREAMING_ROWS,
    add_medians,
    alternating,
    ratio,
    scale_table,
    write_json,
)
from bench.scale.scenarios import one_instance, run_on_new_loop, seed_users
from bench.scale.targets import Ours

# The targets: the HTTP transport's fan-out at least half the WebSocket's,
# and its streaming p99 within 50 ms.
FANOUT_RATIO_MIN = 0.5
STREAMING_P99_MAX_MS = 50.0

TRANSPORTS = {"ws": Ours, "http": OursHttp}

# (label, path into a transport's results, format) of each row of the report.
ROWS = [
    ("connects/s", ("connects", "per_second"), "{:.0f}"),
    (
        "server CPU per connect (ms)",
        ("connects", "server_cpu_ms_per_connect"),
        "{:.2f}",
    ),
    (
        "memory per idle connection (KiB)",
        ("memory", "bytes_per_connection"),
        "{:.1f}",
    ),
    *LOAD_ROWS,
    ("fan-out, 1 instance (deliveries/s)", ("fanout_1", "per_second"), "{:.0f}"),
    ("fan-out: server CPU (s)", ("fanout_1", "server_cpu_s"), "{:.2f}"),
    ("fan-out: clients CPU (s)", ("fanout_1", "clients_cpu"), "{:.2f}"),
    *STREAMING_ROWS,
    (
        "streaming clients CPU (% of a core)",
        ("streaming", "clients_cpu_percent"),
        "{:.0f}",
    ),
]


def run(args, transports: list[str]) -> dict:
    """Every scenario over each transport, a fresh server each, in `--rounds`
    rounds; the order of the transports flips every round."""
    results: dict = {}
    phases = alternating(args.rounds, transports)
    size = max(args.clients, args.streams)
    with run_services(args, name="http") as env:
        # Users of their own for each phase: a user room the earlier phase already
        # streamed to is warm (its history exists), which would favour the later.
        users = seed_users(size * len(phases))
        for i, (round_no, transport) in enumerate(phases):
            name = f"{transport}-{args.server}"
            target = TRANSPORTS[transport](
                name=name, env=env, redis_url=args.redis_url, channel=""
            )
            print(f"== {name} #{round_no}", file=sys.stderr, flush=True)
            phase_users = users[i * size : (i + 1) * size]

            def phase(target=target, phase_users=phase_users) -> dict:
                target.start(1)
                try:
                    coro = one_instance(target, phase_users, args, env)
                    return run_on_new_loop(coro)
                finally:
                    target.stop()

            result = measured_phase(phase)
            result["fanout_1"]["server_cpu_s"] = sum(result["fanout_1"]["server_cpu"])
            results[f"{name} #{round_no}"] = result
    add_medians(results, [f"{t}-{args.server}" for t in transports])
    return results


def verdicts(results: dict, ws: str, http: str, rounds: int) -> list[str]:
    """The issue's two targets, met or not, on the medians of the rounds; and the
    fan-out ratio of each round (both transports measured in it)."""
    lines = []
    if ws in results and http in results:
        each = [
            ratio(
                results[f"{http} #{n}"]["fanout_1"]["per_second"],
                results[f"{ws} #{n}"]["fanout_1"]["per_second"],
            )
            for n in range(1, rounds + 1)
        ]
        got = results[http]["fanout_1"]["per_second"]
        ref = results[ws]["fanout_1"]["per_second"]
        met = got >= FANOUT_RATIO_MIN * ref
        lines.append(
            f"fan-out over HTTP / WebSocket (medians): {ratio(got, ref)}, by round "
            f"{', '.join(each)} (target >= {FANOUT_RATIO_MIN}x: "
            f"{'met' if met else 'NOT met'})"
        )
    if http in results:
        p99 = results[http]["streaming"]["p99_ms"]
        met = p99 <= STREAMING_P99_MAX_MS
        lines.append(
            f"streaming p99 over HTTP (median): {p99:.1f} ms "
            f"(target <= {STREAMING_P99_MAX_MS:g} ms: {'met' if met else 'NOT met'})"
        )
    return lines


def main() -> None:
    """Command line: the transports and their order, the scale, the services."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    add_round_args(parser, "transport")
    add_scale_args(parser)
    add_service_args(parser)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    unknown = set(transports) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports {sorted(unknown)}")

    results = run(args, transports)
    ws, http = f"ws-{args.server}", f"http-{args.server}"
    scale = (
        f"{args.clients} clients, {args.messages} messages; {args.streams} streams "
        f"x {args.tps:g}/s x {args.tokens} events; {args.server}, database "
        f"{args.database}; {args.rounds} rounds, first {','.join(transports)}, "
        "then the order flipped each round; last columns: medians"
    )
    table = scale_table(results, list(results), rows=ROWS, pair=(http, ws))
    print("\n".join([scale, "", table, "", *verdicts(results, ws, http, args.rounds)]))
    if args.json:
        write_json(args.json, scale, results)


if __name__ == "__main__":
    main()
