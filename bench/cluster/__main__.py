"""Redis Cluster benchmark: room fan-out and chat streaming on a Redis Cluster against
one Redis, in the same run, with the Redis commands each delivered event costs.

    .venv/bin/python -m bench.cluster                 # full scale, about 8 minutes
    .venv/bin/python -m bench.cluster --rounds 1 --clients 50 --json out.json

In `--rounds` rounds (the order of the setups flipped each round; the report gives
every phase and the medians), for each setup in turn: a fresh private Redis of the
bench's own (`redis`: one redis-server on a free port; `cluster`: 3 primaries and 3
replicas, bench/cluster/setups.py), a fresh fleet on it (uvicorn, REDIS_URL and
REDIS_CLUSTER as a deployment sets them, the emitter process too), users of its own,
and bench.scale's scenarios (bench/scale/scenarios.py) without the solo room: connects,
fan-out of `--messages` room emits to `--clients` clients on one instance and on two,
and streaming from an emitter process (`--streams` user rooms x `--tps` events/s for
`--tokens` events). Around each fan-out and streaming scenario, `INFO commandstats`
on every node that serves (the server; the cluster's primaries) gives the Redis
commands per delivered event (bench/cluster/ops.py).
"""

import argparse
import statistics
import sys
import traceback

from bench.cluster.ops import CommandCounts
from bench.cluster.setups import SETUPS, on_redis
from bench.harness import (
    add_round_args,
    add_scale_args,
    add_service_args,
    measured_phase,
    run_services,
)
from bench.report import (
    LOAD_ROWS,
    STREAMING_ROWS,
    alternating,
    median_of,
    ratio,
    scale_table,
    write_json,
)
from bench.scale.scenarios import run_on_new_loop, run_target, seed_users
from bench.scale.targets import Ours

# The target: fan-out on the cluster at least 0.8x that on one Redis.
FANOUT_RATIO_MIN = 0.8
# The scenarios whose Redis commands are counted, and their names in the report.
SCENARIOS = {
    "fanout_1": "fan-out, 1 instance",
    "fanout_2": "fan-out, 2 instances",
    "streaming": "streaming",
}


def scenario_rows(key: str, label: str) -> list[tuple]:
    """The Redis rows of one scenario: commands per delivery, the busiest node."""
    return [
        (
            f"{label}: Redis ops per delivery",
            (key, "redis_ops", "per_delivery"),
            "{:.3f}",
        ),
        (
            f"{label}: busiest node's share of the Redis ops (%)",
            (key, "redis_ops", "busiest_node_percent"),
            "{:.0f}",
        ),
    ]


ROWS = [
    ("connects/s", ("connects", "per_second"), "{:.0f}"),
    ("fan-out, 1 instance (deliveries/s)", ("fanout_1", "per_second"), "{:.0f}"),
    ("fan-out, 1 instance: server CPU (s)", ("fanout_1", "server_cpu_s"), "{:.2f}"),
    *scenario_rows("fanout_1", "fan-out, 1 instance"),
    (
        "disconnects after the fan-out: s until the room is empty",
        ("disconnects", "seconds"),
        "{:.1f}",
    ),
    ("fan-out, 2 instances (deliveries/s)", ("fanout_2", "per_second"), "{:.0f}"),
    ("fan-out, 2 instances: server CPU (s)", ("fanout_2", "server_cpu_s"), "{:.2f}"),
    *scenario_rows("fanout_2", "fan-out, 2 instances"),
    *STREAMING_ROWS,
    *scenario_rows("streaming", "streaming"),
    *LOAD_ROWS,
]


def one_setup(name: str, users: list[dict], args, env: dict) -> dict:
    """Every scenario on a fresh Redis setup of this kind, stopped afterwards."""
    setup = SETUPS[name]()
    try:
        target = Ours(
            name=f"{name}-{args.server}",
            env={**env, **setup.env()},
            redis_url=setup.url,
            channel="",
            meter=CommandCounts(setup.ports),
        )
        with on_redis(setup, env["REDIS_KEY_PREFIX"]):
            coro = run_target(target, users, args, target.env, solo=False)
            result = run_on_new_loop(coro)
    finally:
        setup.stop()
    for key in ("fanout_1", "fanout_2"):
        result[key]["server_cpu_s"] = sum(result[key]["server_cpu"])
    return result


def run(args, setups: list[str], report) -> dict:
    """Every scenario on each setup, a fresh Redis and fleet each, in `--rounds`
    rounds; the order of the setups flips every round. `report(results)` after each
    phase: a phase that fails is recorded as failed and the next one runs."""
    results: dict = {}
    phases = alternating(args.rounds, setups)
    size = max(args.clients, args.streams)
    with run_services(args, name="cluster") as env:
        # Users of their own for each phase: a user room an earlier phase streamed
        # to has history (in the database's outbox too), which would favour a later.
        users = seed_users(size * len(phases))
        for i, (round_no, name) in enumerate(phases):
            print(f"== {name} #{round_no}", file=sys.stderr, flush=True)
            phase_users = users[i * size : (i + 1) * size]
            try:
                results[f"{name} #{round_no}"] = measured_phase(
                    lambda name=name, phase_users=phase_users: one_setup(
                        name, phase_users, args, env
                    )
                )
            except Exception as exc:  # noqa: BLE001 - keep the other phases' figures
                traceback.print_exc()
                results[f"{name} #{round_no}"] = {"failed": repr(exc)}
            report(results)
    for name in setups:
        done = [r for k, r in results.items() if k.startswith(f"{name} #")]
        if done := [r for r in done if "failed" not in r]:
            results[name] = median_of(done)
    return results


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """`median (min–max)` of a phase's figures."""
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(median)} ({fmt.format(low)}–{fmt.format(high)})"


# (label, path, format) of the figures given as median (min–max) over the phases.
SPREADS = [
    ("deliveries/s", ("fanout_1", "per_second"), "{:,.0f}"),
    ("ops/delivery", ("fanout_1", "redis_ops", "per_delivery"), "{:.3f}"),
    ("streaming p99 ms", ("streaming", "p99_ms"), "{:.1f}"),
    ("streaming ops/event", ("streaming", "redis_ops", "per_delivery"), "{:.3f}"),
]


def verdicts(results: dict, rounds: int) -> list[str]:
    """The issue's target on the medians, the ratio of each round, and where the
    Redis commands went in each phase."""
    lines = [f"{k}: FAILED {r['failed']}" for k, r in results.items() if "failed" in r]
    done = {k: r for k, r in results.items() if "#" in k and "failed" not in r}
    for name in SETUPS:
        phases = [r for k, r in done.items() if k.startswith(f"{name} #")]
        if phases:
            parts = [
                f"{label} {spread([dig(r, path) for r in phases], fmt)}"
                for label, path, fmt in SPREADS
            ]
            lines.append(
                f"{name}, median (min–max) of {len(phases)}: " + "; ".join(parts)
            )
    both = [
        n for n in range(1, rounds + 1) if {f"cluster #{n}", f"redis #{n}"} <= set(done)
    ]
    each = [
        ratio(
            done[f"cluster #{n}"]["fanout_1"]["per_second"],
            done[f"redis #{n}"]["fanout_1"]["per_second"],
        )
        for n in both
    ]
    if "cluster" in results and "redis" in results:
        got = results["cluster"]["fanout_1"]["per_second"]
        ref = results["redis"]["fanout_1"]["per_second"]
        met = got >= FANOUT_RATIO_MIN * ref
        lines.append(
            f"fan-out, 1 instance, cluster / redis (medians): {ratio(got, ref)}, by "
            f"round {', '.join(each)} (target >= {FANOUT_RATIO_MIN}x: "
            f"{'met' if met else 'NOT met'})"
        )
    for key, result in done.items():
        for scenario, label in SCENARIOS.items():
            ops = result[scenario]["redis_ops"]
            split = "/".join(f"{p:.0f}" for p in ops["node_percents"])
            top = ", ".join(f"{cmd} {calls}" for cmd, calls in ops["top"])
            lines.append(
                f"{key} {label}: {ops['calls']} Redis ops, by node {split} %; {top}"
            )
    return lines


def dig(results: dict, path: tuple) -> float:
    """The figure at `path` in a phase's results."""
    for key in path:
        results = results[key]
    return results


def main() -> None:
    """Command line: the scale, the rounds, the services."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_round_args(parser, "setup")
    add_scale_args(parser)
    add_service_args(parser)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    setups = list(SETUPS)
    scale = (
        f"{args.clients} clients, {args.messages} messages; {args.streams} streams "
        f"x {args.tps:g}/s x {args.tokens} events; {args.server}, database "
        f"{args.database}; {args.rounds} rounds, first {','.join(setups)}, "
        "then the order flipped each round; last columns: medians"
    )
    # Written after every phase: a run cut short keeps what it measured.
    keep = (
        (lambda results: write_json(args.json, scale, results)) if args.json else None
    )
    results = run(args, setups, keep or (lambda results: None))
    table = scale_table(results, list(results), rows=ROWS, pair=("cluster", "redis"))
    print("\n".join([scale, "", table, "", *verdicts(results, args.rounds)]))
    if keep:
        keep(results)


if __name__ == "__main__":
    main()
