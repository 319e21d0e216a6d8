"""The benchmarks' harness works: a tiny run of each (bench.scale against every
target). Measurements, not tests: nothing here checks a speed."""

import json
import subprocess
import sys

import pytest

from bench.scale.targets import TARGETS
from realtime.launcher import BASE_DIR
from testing.services import REDIS_TEST_URL

pytestmark = [pytest.mark.cluster]


def run_bench(module: str, *args: str) -> str:
    """Run a benchmark module on SQLite and the test Redis; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--database", "sqlite"]
        + ["--redis-url", REDIS_TEST_URL, *args],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def measure_rows(stdout: str) -> dict[str, str]:
    """The `| measure | value |` rows of a benchmark's output."""
    rows = dict(
        line.strip("|").split("|")[:2]
        for line in stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    )
    return {k.strip(): v.strip() for k, v in rows.items()}


def test_every_scenario_runs_against_every_target(tmp_path):
    out = tmp_path / "results.json"
    stdout = run_bench(
        "bench.scale",
        *["--json", str(out), "--targets", ",".join(TARGETS)],
        *["--clients", "12", "--messages", "4", "--streams", "4", "--tokens", "6"],
        *["--solo-clients", "3", "--solo-messages", "10"],
    )
    results = json.loads(out.read_text())
    assert list(results) == ["scale", *TARGETS]
    for name in TARGETS:
        got = results[name]
        assert got["connects"]["count"] == 12
        assert got["connects"]["per_second"] > 0
        assert got["memory"]["connections"] == 12
        assert got["fanout_1"]["deliveries"] == 4 * 12
        assert got["fanout_1"]["per_second"] > 0
    # Two instances and streaming from another process need Redis: not the ceiling.
    shared = [name for name, kind in TARGETS.items() if kind.through_redis]
    assert "ceiling" not in shared
    for name in shared:
        got = results[name]
        assert got["fanout_2"]["deliveries"] == 4 * 12
        assert got["solo"]["messages"] == 10
        assert got["streaming"]["events"] == 4 * 6
        assert got["streaming"]["p99_ms"] >= got["streaming"]["p50_ms"] > 0
    assert "fanout_2" not in results["ceiling"]
    # The report compares ours with python-socketio.
    assert "| fan-out, 1 instance (deliveries/s) |" in stdout
    assert "ours-uvicorn / socketio" in stdout


def test_the_notes_benchmark_runs():
    stdout = run_bench(
        "bench.notes",
        *["--history", "60", "--clients", "6", "--documents", "2", "--seconds", "1"],
    )
    rows = measure_rows(stdout)
    assert rows["history"] == "60 updates"
    assert any(k.startswith("check of a keystroke") for k in rows)
    for event in ("ydoc:document:update", "ydoc:awareness:update"):
        deliveries = rows[f"{event} relay: deliveries, p50 / p99 / max"]
        assert int(deliveries.split(",")[0]) == 2 * 2 * 1  # 2 docs, 2 readers each


def test_the_stream_benchmark_runs():
    stdout = run_bench("bench.stream", "--streams", "3", "--tokens", "10")
    rows = measure_rows(stdout)
    assert rows["server / database / layer"] == "uvicorn / sqlite / redis"
    assert rows["deltas delivered"] == "30 (missing 0)"
    assert "DB writes per message" in rows
