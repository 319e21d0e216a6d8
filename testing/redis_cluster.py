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
# MIGRATE's own timeout (ms) for one batch of keys between two local nodes.
MIGRATE_TIMEOUT_MS = 5000


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
        return self.primary_of_slot(key_slot(key.encode()))

    def primary_of_slot(self, slot: int) -> int:
        """The port of the primary that serves `slot`."""
        for port, ranges in self.slot_ranges().items():
            if any(first <= slot <= last for first, last in ranges):
                return port
        raise AssertionError(f"slot {slot} is not served")

    def slots_of(self, match: str) -> set[int]:
        """The slots of every key matching `match`, on every primary."""
        return {
            key_slot(key.encode())
            for port in self.primary_ports()
            for key in self.node(port).scan_iter(match=match, count=1000)
        }

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

    def move_slots(self, slots: list[int], *, pause: float = 0.0) -> dict[int, int]:
        """Migrate each slot, with its keys, to the next primary after its owner, as
        `redis-cli --cluster reshard` does (IMPORTING/MIGRATING, MIGRATE in batches,
        then SETSLOT NODE everywhere), waiting `pause` between steps so that clients
        meet the migrating slot (ASK) and then its new owner (MOVED). Returns
        {slot: new owner port}."""
        primaries = self.primary_ports()
        ids = {p: self.node(p).execute_command("CLUSTER", "MYID") for p in primaries}
        moved = {}
        for slot in slots:
            source = self.primary_of_slot(slot)
            target = primaries[(primaries.index(source) + 1) % len(primaries)]
            src, dst = self.node(source), self.node(target)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
            time.sleep(pause)
            while keys := src.execute_command(
                "CLUSTER", "GETKEYSINSLOT", slot, RESHARD_PIPELINE
            ):
                try:
                    src.execute_command(
                        "MIGRATE", "127.0.0.1", target, "", 0, MIGRATE_TIMEOUT_MS,
                        "KEYS", *keys,
                    )  # fmt: skip
                except redis.ResponseError as err:
                    if "BUSYKEY" not in str(err):
                        raise
                    # A key on both sides: written on the target (ASK: the source
                    # did not have it) and then again on the source, e.g. by a
                    # script that reached a key it did not declare.
                    both = [k for k in keys if self._importing_has(dst, k)]
                    raise AssertionError(
                        f"slot {slot}: {both} written on both sides of a migration"
                    ) from err
                time.sleep(pause)
            # The target first: once the source lets go, the target must own it.
            for port in [target, source, *set(primaries) - {source, target}]:
                self.node(port).execute_command(
                    "CLUSTER", "SETSLOT", slot, "NODE", ids[target]
                )
            moved[slot] = target
        self.wait_ok()
        return moved

    @staticmethod
    def _importing_has(node: redis.Redis, key: str) -> bool:
        """Whether a node that imports the key's slot holds it (ASKING first)."""
        pipe = node.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.exists(key)
        return bool(pipe.execute()[1])

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
