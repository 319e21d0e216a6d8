"""The scale benchmark's harness works (a tiny run against every kind of server).
Measurements, not tests: nothing here checks a speed."""

import json
import subprocess
import sys

import pytest

from realtime.launcher import BASE_DIR
from testing.services import REDIS_TEST_URL

pytestmark = [pytest.mark.cluster]


def run_bench(script: str, *args: str) -> str:
    """Run a benchmark on SQLite and the test Redis; its standard output."""
    result = subprocess.run(
        [sys.executable, script, "--database", "sqlite"]
        + ["--redis-url", REDIS_TEST_URL, *args],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_scenario_runs_against_every_target(tmp_path):
    out = tmp_path / "results.json"
    stdout = run_bench(
        "bench/scale_bench.py",
        *["--json", str(out), "--targets", "ours-uvicorn,socketio,ceiling"],
        *["--clients", "12", "--messages", "4", "--streams", "4", "--tokens", "6"],
        *["--solo-clients", "3", "--solo-messages", "10"],
    )
    results = json.loads(out.read_text())
    for name in ("ours-uvicorn", "socketio", "ceiling"):
        got = results[name]
        assert got["connects"]["count"] == 12
        assert got["connects"]["per_second"] > 0
        assert got["memory"]["connections"] == 12
        assert got["fanout_1"]["deliveries"] == 4 * 12
        assert got["fanout_1"]["per_second"] > 0
    for name in ("ours-uvicorn", "socketio"):
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
        "bench/notes_bench.py",
        *["--history", "60", "--clients", "6", "--documents", "2", "--seconds", "1"],
    )
    rows = dict(
        line.strip("|").split("|")[:2]
        for line in stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    )
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["history"] == "60 updates"
    assert any(k.startswith("check of a keystroke") for k in rows)
    for event in ("ydoc:document:update", "ydoc:awareness:update"):
        deliveries = rows[f"{event} relay: deliveries, p50 / p99 / max"]
        assert int(deliveries.split(",")[0]) == 2 * 2 * 1  # 2 docs, 2 readers each
