"""The services tests need besides the database: the shared test Redis, a Redis of a
test's own, Debian's Chromium; whether they are there, and what missing means."""

import os
import shutil
import socket
import subprocess
import time
from urllib.parse import urlparse

import redis

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
# CI sets REQUIRE_SERVICES=1: a missing Redis is then a failure, never a skip.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
# The browser tests drive Debian's Chromium (never a browser playwright downloads).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def redis_available() -> bool:
    """Whether the test Redis answers on its port."""
    parsed = urlparse(REDIS_TEST_URL)
    try:
        with socket.create_connection(
            (parsed.hostname, parsed.port or 6379), timeout=1
        ):
            return True
    except OSError:
        return False


def chromium_available() -> bool:
    """Whether the Chromium the browser tests use is installed."""
    return os.access(CHROMIUM, os.X_OK)


def redis_flush(prefix: str) -> None:
    """Delete every key under a test prefix."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        # Keys of one slot are tagged {prefix}, the rest start with prefix.
        for match in (f"{{{prefix}}}:*", f"{prefix}:*"):
            for key in client.scan_iter(match=match, count=1000):
                client.delete(key)
    finally:
        client.close()


class PrivateRedis:
    """A redis-server of the test's own, which the test may restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = None

    def start(self) -> None:
        """Start it and wait until it answers (10 s at most)."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: it loses everything (it keeps nothing on disk)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The port of the private Redis that tests restart (the `private_redis` fixture),
# chosen at import so that a `cluster_env` marker can point servers at it.
PRIVATE_REDIS_PORT = _free_port()
PRIVATE_REDIS_URL = f"redis://127.0.0.1:{PRIVATE_REDIS_PORT}/0"
