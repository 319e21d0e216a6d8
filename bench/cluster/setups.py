"""The two Redis setups a round compares, each fresh and the bench's own, so that the
command counts of its nodes are this benchmark's alone: one redis-server on a free
port ("redis"), and a Redis Cluster of 3 primaries and 3 replicas ("cluster")."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from realtime.launcher_cluster import free_cluster_ports
from testing.redis_cluster import RedisClusterProcesses
from testing.services import PrivateRedis


@dataclass
class Setup:
    """A started Redis: the URL a fleet gets, and the nodes that serve commands."""

    cluster: bool
    url: str
    ports: list[int]  # single: the server; cluster: every primary
    stop: Callable[[], None]

    def env(self) -> dict:
        """What a server or emitter process is told, as a fleet's would be."""
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": str(self.cluster).lower()}


def single() -> Setup:
    """A private redis-server on a free port."""
    # The cluster's port picker: below the kernel's ephemeral range, where the
    # fleet's own free_port() would not hand it out meanwhile.
    server = PrivateRedis(free_cluster_ports(1)[0])
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    return Setup(cluster=False, url=url, ports=[server.port], stop=server.kill)


def cluster() -> Setup:
    """A private Redis Cluster: 3 primaries, 3 replicas, on loopback."""
    nodes = RedisClusterProcesses().start()
    return Setup(
        cluster=True, url=nodes.url, ports=nodes.primary_ports(), stop=nodes.stop
    )


SETUPS: dict[str, Callable[[], Setup]] = {"redis": single, "cluster": cluster}


@contextmanager
def on_redis(setup: Setup, prefix: str) -> Iterator[None]:
    """This process (the emits of the fan-out, the joins) on `setup`'s Redis: the
    state store and the channel layer follow the changed settings."""
    from django.test import override_settings

    from realtime.settings import redis_channel_layer

    layer = redis_channel_layer(
        url=setup.url,
        sentinels=[],
        master="",
        prefix=prefix,
        cluster=setup.cluster,
        nodes=[],
    )
    with override_settings(
        REDIS_URL=setup.url,
        REDIS_CLUSTER=setup.cluster,
        REDIS_CLUSTER_NODES=[],
        CHANNEL_LAYERS={"default": layer},
    ):
        yield
