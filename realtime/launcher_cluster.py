"""A local Redis Cluster: 3 primaries and 3 replicas of redis-server on loopback
ports, joined by `redis-cli --cluster create` (realtime_fleet --redis-cluster, tests).
"""

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from realtime.launcher import die_with_parent

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
# The smallest cluster that survives losing a primary: each of 3 primaries has a
# replica to promote, and a majority of primaries (2 of 3) votes for it.
PRIMARIES = 3
# How long a node may be unreachable before its replica takes over: the value of
# Redis's cluster tutorial (its default, 15 s, makes every failover 15 s long).
# Tests pass a shorter one so that a failover takes seconds.
NODE_TIMEOUT_MS = 5000
SLOTS = 16384
# A fleet's liveness must outlast a failover, or the instances reap each other's
# sessions meanwhile. An instance renews every INSTANCE_TTL/3, and after a renewal
# that failed (it can hang until the promotion) it tries again a third later: the
# TTL must exceed three failovers (node timeout plus an election, about 1.3 node
# timeouts).
INSTANCE_TTL_PER_NODE_TIMEOUT = 4
# Each node also listens on its port + 10000 (the cluster bus), so ports stay below
# 55536, and both must be free.
BUS_OFFSET = 10000
PORT_RANGE = range(20000, 45000)
# How long a node, `--cluster create` and a whole cluster get to come up: a loaded
# 2-core machine takes seconds, a healthy one well under a second.
NODE_START_TIMEOUT = 10.0
CREATE_TIMEOUT = 60.0
CLUSTER_OK_TIMEOUT = 30.0


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_cluster_ports(n: int) -> list[int]:
    """n ports in PORT_RANGE whose cluster-bus ports are free too."""
    out: list[int] = []
    for port in random.sample(PORT_RANGE, 400):
        if _free(port) and _free(port + BUS_OFFSET):
            out.append(port)
            if len(out) == n:
                return out
    raise RuntimeError("no free ports for a Redis Cluster")


class LocalRedisCluster:
    """Six redis-servers in cluster mode on 127.0.0.1: ports[:3] start as
    primaries, each of ports[3:] as a replica of one of them."""

    def __init__(
        self, primaries: int = PRIMARIES, *, node_timeout_ms: int = NODE_TIMEOUT_MS
    ) -> None:
        self.ports = free_cluster_ports(primaries * 2)
        self.primaries_at_start = self.ports[:primaries]
        self.node_timeout_ms = node_timeout_ms
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

    def fleet_env(self) -> dict[str, str]:
        """The environment that runs a fleet on this cluster."""
        ttl = INSTANCE_TTL_PER_NODE_TIMEOUT * self.node_timeout_ms / 1000
        return {
            "REDIS_CLUSTER": "true",
            "REDIS_URL": self.url,
            "REDIS_CLUSTER_NODES": self.nodes,
            # The cluster replaces any Redis of the environment, Sentinels too.
            "REDIS_SENTINELS": "",
            "INSTANCE_TTL": f"{ttl:g}",
        }

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node."""
        return redis.Redis(
            host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5
        )

    def live_ports(self) -> list[int]:
        """The ports of the nodes whose process runs."""
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def primary_ports(self) -> list[int]:
        """The ports of the nodes that serve slots now."""
        out = []
        for port in self.live_ports():
            if self.node(port).execute_command("ROLE")[0] == "master":
                out.append(port)
        return sorted(out)

    # --- life -----------------------------------------------------------------------

    def start(self) -> "LocalRedisCluster":
        """Start every node, join them into one cluster, wait until it serves."""
        try:
            for port in self.ports:
                self.start_node(port)
            self.create()
            self.wait_ok()
            self.wait_replicas_synced()
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, port: int) -> None:
        """Start (or restart) one node with its own nodes.conf."""
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
            + ["--cluster-enabled", "yes"]
            + ["--cluster-node-timeout", str(self.node_timeout_ms)]
            + ["--cluster-config-file", f"nodes-{port}.conf", "--dir", str(self.dir)]
            # A local cluster to try and test against: nothing to keep on disk.
            + ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
            # A replica's first sync starts at once: Redis otherwise waits 5 s for
            # more replicas to share one diskless transfer, and each primary has one.
            + ["--repl-diskless-sync-delay", "0"]
            + ["--logfile", str(self.dir / f"redis-{port}.log")],
            stdout=subprocess.DEVNULL,
            # A command or a test run that crashes leaves no redis-server behind.
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + NODE_START_TIMEOUT
        while True:
            try:
                self.node(port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server :{port} did not start") from None
                time.sleep(0.05)

    def create(self) -> None:
        """`redis-cli --cluster create`: slots to the first half, one replica each."""
        subprocess.run(
            [REDIS_CLI, "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in self.ports]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=CREATE_TIMEOUT,
        )

    def wait_replicas_synced(self, timeout: float = CLUSTER_OK_TIMEOUT) -> None:
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
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas never synchronised: {links}")
            time.sleep(0.1)

    def wait_ok(self, timeout: float = CLUSTER_OK_TIMEOUT) -> None:
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
                pass  # a node still starting or electing: ask again
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster never became ok")
            time.sleep(0.1)

    def _slot_owner(self, port: int) -> tuple:
        slots = self.node(port).execute_command("CLUSTER", "SLOTS")
        return tuple(sorted((int(r[0]), int(r[2][1])) for r in slots))

    def stop(self) -> None:
        """Kill every node and delete their files (a local cluster keeps nothing)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalRedisCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
