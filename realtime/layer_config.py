"""The CHANNEL_LAYERS entry on Redis: channels-redis on one Redis or Sentinel, our
own layer (realtime.cluster_layer) on a Redis Cluster, which channels-redis cannot
use (its scripts touch keys of several slots)."""

from urllib.parse import urlparse

import redis
from redis.driver_info import DriverInfo

# Seconds to wait for a TCP connection to a Redis node before trying again.
CONNECT_TIMEOUT = 5
# Given to channels-redis's connections so that each new one does not ask
# importlib.metadata for redis-py's version (0.75 ms a connection in redis-py 8.1).
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)


def redis(
    *,
    url: str,
    sentinels: list,
    master: str,
    prefix: str,
    cluster: bool,
    nodes: list[tuple[str, int]],
    capacity: int,
    socket_timeout: float,
    max_connections: int,
) -> dict:
    """The layer of a fleet on Redis, under `prefix`."""
    if cluster:
        return {
            "BACKEND": "realtime.cluster_layer.RedisClusterChannelLayer",
            "CONFIG": {
                "url": url,
                "nodes": [f"{host}:{port}" for host, port in nodes],
                "prefix": f"{prefix}:asgi",
                "capacity": capacity,
                "socket_timeout": socket_timeout,
                "max_connections": max_connections,
            },
        }
    host: dict = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "max_connections": max_connections,
        "driver_info": DRIVER_INFO,
    }
    if sentinels:
        host.update({"sentinels": sentinels, "master_name": master})
        if url:
            parsed = urlparse(url)
            if parsed.password:
                host["password"] = parsed.password
            if parsed.path.strip("/"):
                host["db"] = int(parsed.path.strip("/"))
    else:
        host["address"] = url
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [host], "prefix": f"{prefix}:asgi", "capacity": capacity},
    }
