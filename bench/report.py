"""The benchmarks' output: Markdown tables as docs/benchmarks.md records them, and the
JSON results of the scale benchmark."""

import json
import statistics
from pathlib import Path

from bench.harness import percentile


def measure_table(rows: list[tuple[str, str]]) -> str:
    """A two-column `| measure | value |` table (stream and notes)."""
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def timeline_table(trace: list[tuple[str, float, float]]) -> str:
    """Deliveries, p50 and p99 per half second of send time, from (event, send time,
    latency ms) samples: shows stalls, and senders falling into step."""
    t0 = min(t for _, t, _ in trace)
    buckets: dict[tuple[str, int], list[float]] = {}
    for event, t, ms in trace:
        buckets.setdefault((event, int((t - t0) * 2)), []).append(ms)
    lines = [
        "| event | from s | deliveries | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for (event, half), samples in sorted(buckets.items(), key=lambda kv: kv[0][1]):
        lines.append(
            f"| {event} | {half / 2:.1f} | {len(samples)} |"
            f" {statistics.median(samples):.1f} | {percentile(samples, 99):.1f} |"
        )
    return "\n".join(lines)


# --- scale: every target side by side ---------------------------------------------

# (label, path into a target's results, format): the streaming scenario's rows.
STREAMING_ROWS = [
    ("streaming p50 (ms)", ("streaming", "p50_ms"), "{:.1f}"),
    ("streaming p99 (ms)", ("streaming", "p99_ms"), "{:.1f}"),
    ("streaming p99 after 1 s (ms)", ("streaming", "steady_p99_ms"), "{:.1f}"),
    ("streaming max (ms)", ("streaming", "max_ms"), "{:.1f}"),
    (
        "streaming server CPU (% of a core)",
        ("streaming", "server_cpu_percent"),
        "{:.0f}",
    ),
]
# (label, path into a target's results, format) of each row of the scale table.
SCALE_ROWS = [
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
    ("fan-out, 1 instance (deliveries/s)", ("fanout_1", "per_second"), "{:.0f}"),
    ("fan-out, 2 instances (deliveries/s)", ("fanout_2", "per_second"), "{:.0f}"),
    (
        "CPU of the instance without members, solo room (s)",
        ("solo", "cpu_b"),
        "{:.2f}",
    ),
    *STREAMING_ROWS,
]
# The ratio column: ours against the reference.
OURS, THEIRS = "ours-uvicorn", "socketio"


def ratio(ours: float | None, theirs: float | None) -> str:
    """ours / theirs as `1.23×`, or n/a when either is missing or zero."""
    if not ours or not theirs:
        return "n/a"
    return f"{ours / theirs:.2f}×"


def _get(results: dict, name: str, path) -> float | None:
    value = results.get(name)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def scale_table(
    results: dict,
    names: list[str],
    *,
    rows: list = SCALE_ROWS,
    pair: tuple[str, str] = (OURS, THEIRS),
) -> str:
    """The scale results as a Markdown table, a column per target in `names`, with
    the ratio of the first target of `pair` to the second (by default ours to
    python-socketio)."""
    mine_name, theirs_name = pair
    head = f"| measure | {' | '.join(names)} | {mine_name} / {theirs_name} |"
    lines = [head, "|---" * (len(names) + 2) + "|"]
    for label, path, fmt in rows:
        values = []
        for name in names:
            value = _get(results, name, path)
            if path[0] == "memory" and value is not None:
                value = value / 1024
            values.append(fmt.format(value) if value is not None else "—")
        mine, theirs = _get(results, mine_name, path), _get(results, theirs_name, path)
        lines.append(
            f"| {label} | " + " | ".join(values) + f" | {ratio(mine, theirs)} |"
        )
    return "\n".join(lines)


# The rows of how busy the machine was around a phase (harness.measured_phase).
LOAD_ROWS = [
    ("load average (1 min) before", ("load", "before"), "{:.1f}"),
    ("load average (1 min) after", ("load", "after"), "{:.1f}"),
    (
        "machine CPU busy in the phase, all programs (% of all cores)",
        ("load", "machine_busy_percent"),
        "{:.0f}",
    ),
]


def alternating(rounds: int, names: list[str]) -> list[tuple[int, str]]:
    """(round, name) of every phase: the names in order in odd rounds, reversed in
    even ones, so neither always runs first (a warm or busy machine favours one)."""
    return [
        (round_no, name)
        for round_no in range(1, rounds + 1)
        for name in (names if round_no % 2 else names[::-1])
    ]


def median_of(runs: list[dict]) -> dict:
    """The median of every number in the runs' results, key by key."""
    merged: dict = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            merged[key] = median_of([r[key] for r in runs])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if r[key] is not None]
            merged[key] = statistics.median(values) if values else None
    return merged


def add_medians(results: dict, names: list[str]) -> None:
    """Add, under each name, the medians of its phases ("name #1", "name #2", ...)."""
    for name in names:
        rounds = [r for k, r in results.items() if k.startswith(f"{name} #")]
        results[name] = median_of(rounds)


def write_json(path: str, scale: str, results: dict) -> None:
    """The scale results, with a line that says at what scale they were measured."""
    Path(path).write_text(json.dumps({"scale": scale, **results}, indent=1))
