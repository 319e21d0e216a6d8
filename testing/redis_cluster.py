"""A real Redis Cluster of the tests' own: 3 primaries and 3 replicas of Debian's
redis-server on loopback ports, joined by `redis-cli --cluster create`.

One is started per test run, on first use (the `redis_cluster` fixture), and every
test works under its own key prefix, as on the shared Redis. Tests that kill or
reshard nodes use a `RedisClusterProcesses` of their own.
"""

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
PRIMARIES = 3
# How long a node may be unreachable before its replica takes over: short, so that a
# failover test waits seconds (production keeps Redis's default of 15 s).
NODE_TIMEOUT_MS = 2000
SLOTS = 16384


# Each node also listens on its port + 10000 (the cluster bus), so ports stay below
# 55536, and both must be free.
BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_ports(n: int) -> list[int]:
    """n ports from 20000-45000 whose cluster-bus ports are free too."""
    out: list[int] = []
    for port in random.sample(range(20000, 45000), 400):
        if _free(port) and _free(port + BUS_OFFSET):
            out.append(port)
            if len(out) == n:
                return out
    raise RuntimeError("no free ports for a Redis Cluster")


class RedisClusterProcesses:
    """Six redis-servers in cluster mode: ports[:3] start as primaries."""

    def __init__(self, primaries: int = PRIMARIES) -> None:
        self.ports = _free_ports(primaries * 2)
        self.primaries_at_start = self.ports[:primaries]
        self.dir = Path(tempfile.mkdtemp(prefix="rt-redis-cluster-"))
        self.procs: dict[int, subprocess.Popen] = {}

    # --- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """REDIS_URL of the fleet: any one node (the client discovers the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def nodes(self) -> str:
        """REDIS_CLUSTER_NODES: every node, comma-separated host:port."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def client(self) -> RedisCluster:
        """A synchronous cluster client (text replies), for checks."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.live_ports()],
            decode_responses=True,
        )

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node."""
        return redis.Redis(
            host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5
        )

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def primary_ports(self) -> list[int]:
        """The ports of the nodes that serve slots now."""
        out = []
        for port in self.live_ports():
            info = self.node(port).execute_command("ROLE")
            if info[0] == "master":
                out.append(port)
        return sorted(out)

    # --- life -------------------------------------------------------------------

    def start(self) -> "RedisClusterProcesses":
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [REDIS_CLI, "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in self.ports]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()
        self.wait_replicas_synced()
        return self

    def wait_replicas_synced(self, timeout: float = 30) -> None:
        """Until every live replica has synchronised with its primary: one that never
        did holds no data and is never promoted."""
        deadline = time.monotonic() + timeout
        while True:
            links = [
                info.get("master_link_status")
                for info in (
                    self.node(p).info("replication") for p in self.live_ports()
                )
                if info["role"] == "slave"
            ]
            if links and all(link == "up" for link in links):
                return
            assert time.monotonic() < deadline, f"replicas never synchronised: {links}"
            time.sleep(0.1)

    def start_node(self, port: int) -> None:
        """Start (or restart) one node with its own nodes.conf."""
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
            + [
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
            ]
            + ["--cluster-config-file", f"nodes-{port}.conf", "--dir", str(self.dir)]
            + ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
            + ["--logfile", str(self.dir / f"redis-{port}.log")],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.node(port).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, (
                    f"redis-server :{port} did not start"
                )
                time.sleep(0.05)

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says cluster_state:ok, every slot is served, and the
        nodes agree on which node serves the first slot of each primary."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [self.node(p).cluster("info") for p in self.live_ports()]
                if (
                    all(
                        s["cluster_state"] == "ok"
                        and int(s["cluster_slots_ok"]) == SLOTS
                        for s in states
                    )
                    and len({self._slot_owner(p) for p in self.live_ports()}) == 1
                ):
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the Redis Cluster never became ok"
            time.sleep(0.1)

    def _slot_owner(self, port: int) -> tuple:
        slots = self.node(port).execute_command("CLUSTER", "SLOTS")
        return tuple(sorted((int(r[0]), int(r[2][1])) for r in slots))

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
            + ["--cluster-pipeline", "10"],
            check=True,
            capture_output=True,
            timeout=120,
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

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
