"""The benchmarks' harness works: a tiny run of each (bench.scale against every
target). Measurements, not tests: nothing here checks a speed."""

import asyncio
import json
import subprocess
import sys

import pytest

from bench.rawhttp import RawHttp
from bench.scale.targets import TARGETS
from realtime.launcher import BASE_DIR
from testing.services import REDIS_TEST_URL

pytestmark = [pytest.mark.cluster]


# A Redis Cluster's start and two setups' fleets take most of bench.cluster's run.
SLOW_BENCH_TIMEOUT = 240


def run_bench(module: str, *args: str, timeout: float = 110) -> str:
    """Run a benchmark module on SQLite and the test Redis; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--database", "sqlite"]
        + ["--redis-url", REDIS_TEST_URL, *args],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
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
        # The fan-out room's kind ("bench") keeps no history by default.
        assert got["fanout_1"]["positioned"] is False
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
    assert "HISTORY_ROOM_KINDS=user,channel (fan-out room 'bench'" in stdout


def test_the_http_benchmark_runs_both_transports_in_each_round(tmp_path):
    out = tmp_path / "results.json"
    stdout = run_bench(
        "bench.http",
        *["--json", str(out), "--rounds", "2"],
        *["--clients", "12", "--messages", "4", "--streams", "4", "--tokens", "6"],
    )
    results = json.loads(out.read_text())
    rounds = ["ws-uvicorn #1", "http-uvicorn #1", "http-uvicorn #2", "ws-uvicorn #2"]
    assert list(results) == ["scale", *rounds, "ws-uvicorn", "http-uvicorn"]
    for name in rounds:
        got = results[name]
        assert got["connects"]["count"] == 12
        assert got["memory"]["connections"] == 12
        assert got["fanout_1"]["deliveries"] == 4 * 12
        assert got["streaming"]["events"] == 4 * 6
        assert got["streaming"]["p99_ms"] >= got["streaming"]["p50_ms"] > 0
    # The last columns are the medians of the rounds.
    fanouts = sorted(
        results[f"http-uvicorn #{n}"]["fanout_1"]["per_second"] for n in (1, 2)
    )
    assert results["http-uvicorn"]["fanout_1"]["per_second"] == sum(fanouts) / 2
    assert "| fan-out, 1 instance (deliveries/s) |" in stdout
    assert "http-uvicorn / ws-uvicorn |" in stdout
    assert "fan-out over HTTP / WebSocket (medians): " in stdout
    assert "streaming p99 over HTTP (median): " in stdout


def test_the_cluster_benchmark_runs_both_setups_and_counts_their_redis_ops(tmp_path):
    out = tmp_path / "results.json"
    stdout = run_bench(
        "bench.cluster",
        *["--json", str(out), "--rounds", "1"],
        *["--clients", "6", "--messages", "3", "--streams", "3", "--tokens", "5"],
        timeout=SLOW_BENCH_TIMEOUT,
    )
    results = json.loads(out.read_text())
    assert list(results) == ["scale", "redis #1", "cluster #1", "redis", "cluster"]
    for name in ("redis #1", "cluster #1"):
        got = results[name]
        assert got["fanout_1"]["deliveries"] == got["fanout_2"]["deliveries"] == 3 * 6
        assert got["streaming"]["events"] == 3 * 5
        for scenario in ("fanout_1", "fanout_2", "streaming"):
            ops = got[scenario]["redis_ops"]
            assert ops["calls"] > 0 and ops["per_delivery"] > 0
            assert sum(ops["node_percents"]) == pytest.approx(100)
            assert len(ops["top"]) == 5
    # One node serves the single Redis; the cluster's three primaries share the work.
    assert len(results["redis #1"]["streaming"]["redis_ops"]["node_percents"]) == 1
    assert len(results["cluster #1"]["streaming"]["redis_ops"]["node_percents"]) == 3
    assert "| fan-out, 1 instance: Redis ops per delivery |" in stdout
    assert "cluster / redis |" in stdout
    assert "fan-out, 1 instance, cluster / redis (medians): " in stdout


def chunk(data: bytes) -> bytes:
    """One write of the response as HTTP/1.1 chunked encoding carries it."""
    return b"%x\r\n%s\r\n" % (len(data), data)


# A stream as uvicorn writes it: the head, then a chunk per write (the third a batch of
# two events, after a keep-alive comment), and the end of the response.
STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
    + chunk(b'event: open\ndata: {"sid": "s1", "k": 1}\n\n')
    + chunk(b":\n\n")
    + chunk(b'data: {"ack":0}\n\ndata: [1]\n\n')
    + chunk(b'event: close\ndata: {"code": 4401}\n\n')
    + b"0\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    closed = False

    def close(self):
        self.closed = True


@pytest.mark.parametrize("piece", [len(STREAM), 1, 7])
async def test_the_http_bench_client_reads_events_however_the_bytes_are_split(piece):
    stream = RawHttp()
    stream.connection_made(FakeTransport())
    for at in range(0, len(STREAM), piece):
        stream.data_received(STREAM[at : at + piece])
    assert stream.started.done() and stream.opened == {"sid": "s1", "k": 1}
    assert [await stream.recv(0.1), await stream.recv(0.1)] == [b'{"ack":0}', b"[1]"]
    assert stream.close_code == 4401
    assert stream.transport.closed  # the last chunk ended the response


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


def test_the_recovery_benchmark_loses_and_duplicates_nothing():
    # 4 streams on two instances, half the sockets reset each second: every
    # returning socket gets what it missed once (docs/protocol.md §8). Until the
    # duplicate after a replay is fixed (the xfail in test_history), this can
    # fail now and then, on "events duplicated": that is the bug, not the bench.
    stdout = run_bench(
        "bench.recovery",
        *["--streams", "4", "--rate", "20", "--seconds", "2", "--churn", "0.5"],
    )
    rows = measure_rows(stdout)
    assert rows["servers / database / layer"] == "2 x uvicorn / sqlite / redis"
    assert int(rows["sockets reset"]) >= 2
    assert rows["reconnects with recover"].endswith("(all ok)")
    due, received = rows["events due / received"].split(" / ")
    assert int(due) == 4 * 41  # 40 deltas and a completion per stream
    assert rows["events lost"] == "0"
    assert rows["events duplicated"] == "0"
    assert rows["events out of order"] == "0"
    assert rows["recovered:false"] == "0"
    assert rows["messages whose text differs from the stored content"] == (
        "0 by offset, 0 as received"
    )
    assert received == due


def test_the_layer_benchmark_measures_both_layers():
    result = subprocess.run(
        [sys.executable, "-m", "bench.layer", "--redis-url", REDIS_TEST_URL]
        + ["--messages", "200", "--members", "5", "--concurrency", "20"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tables = result.stdout.split("channels-redis (one Redis)")
    assert len(tables) == 2 and tables[0].startswith("\ncluster layer, 200 messages")
    for table in tables:
        rows = measure_rows(table)
        assert len(rows) == 6  # the header row and five measures
        assert all(
            float(v.replace(",", "")) > 0 for k, v in rows.items() if k != "measure"
        )
