"""A real Redis Cluster of the tests' own: realtime.launcher_cluster's 3 primaries and
3 replicas, with a short node timeout and what tests do to it (kill, reshard, scan).

One is started per test run, on first use (the `redis_cluster` fixture), and every
test works under its own key prefix, as on the shared Redis. Tests that kill or
reshard nodes use a `RedisClusterProcesses` of their own.
"""

import subprocess
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from realtime.launcher_cluster import (
    PRIMARIES,
    REDIS_CLI,
    SLOTS,
    LocalRedisCluster,
)

__all__ = ["NODE_TIMEOUT_MS", "PRIMARIES", "SLOTS", "RedisClusterProcesses"]

# How long a node may be unreachable before its replica takes over: short, so that a
# failover test waits seconds (production keeps Redis's default of 15 s).
NODE_TIMEOUT_MS = 2000
# redis-cli moves this many keys per MIGRATE: small batches keep each step short, so
# clients meet ASK redirections mid-slot, as in a production reshard.
RESHARD_PIPELINE = 10
RESHARD_TIMEOUT = 120


class RedisClusterProcesses(LocalRedisCluster):
    """Six redis-servers in cluster mode: ports[:3] start as primaries."""

    def __init__(self, primaries: int = PRIMARIES) -> None:
        super().__init__(primaries, node_timeout_ms=NODE_TIMEOUT_MS)

    def client(self) -> RedisCluster:
        """A synchronous cluster client (text replies), for checks."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.live_ports()],
            decode_responses=True,
        )

    def slot_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """The slot ranges each primary serves, as a live node sees them."""
        out: dict[int, list[tuple[int, int]]] = {}
        rows = self.node(self.live_ports()[0]).execute_command("CLUSTER", "SLOTS")
        for first, last, primary, *_ in rows:
            out.setdefault(int(primary[1]), []).append((int(first), int(last)))
        return out

    def primary_of(self, key: str) -> int:
        """The port of the primary that serves `key`'s slot (its hash tag's)."""
        slot = key_slot(key.encode())
        for port, ranges in self.slot_ranges().items():
            if any(first <= slot <= last for first, last in ranges):
                return port
        raise AssertionError(f"slot {slot} of {key!r} is not served")

    def slot_count(self, port: int) -> int:
        """How many slots the primary on `port` serves."""
        return sum(last - first + 1 for first, last in self.slot_ranges().get(port, []))

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        self.procs[port].kill()
        self.procs[port].wait()

    def replica_of(self, port: int) -> int:
        """The port of a live replica of the primary on `port`."""
        node_id = self.node(port).execute_command("CLUSTER", "MYID")
        for other in self.live_ports():
            role = self.node(other).execute_command("ROLE")
            if role[0] == "slave" and int(role[2]) == port:
                return other
        raise AssertionError(f"no replica of :{port} ({node_id})")

    def wait_primary(self, port: int, timeout: float = 30) -> None:
        """Until the node on `port` is a primary and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while self.node(port).execute_command("ROLE")[0] != "master":
            assert time.monotonic() < deadline, f":{port} was never promoted"
            time.sleep(0.1)
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move `slots` slots from the primary on `source` to the one on `target`,
        with their keys, while clients keep working (redis-cli migrates key by key)."""
        ids = {
            p: self.node(p).execute_command("CLUSTER", "MYID") for p in (source, target)
        }
        subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{target}"]
            + ["--cluster-from", ids[source], "--cluster-to", ids[target]]
            + ["--cluster-slots", str(slots), "--cluster-yes"]
            + ["--cluster-pipeline", str(RESHARD_PIPELINE)],
            check=True,
            capture_output=True,
            timeout=RESHARD_TIMEOUT,
        )
        self.wait_ok()

    def keys_per_primary(self, match: str) -> dict[int, int]:
        """How many keys matching `match` each primary holds (SCAN on each)."""
        return {
            port: sum(1 for _ in self.node(port).scan_iter(match=match, count=1000))
            for port in self.primary_ports()
        }

    def flush(self, prefix: str) -> None:
        """Delete every key under a test prefix, on every primary."""
        for port in self.primary_ports():
            node = self.node(port)
            for key in node.scan_iter(match=f"*{prefix}*", count=1000):
                try:
                    node.delete(key)
                except redis.ResponseError:
                    pass  # moved meanwhile
