"""The local launcher: `manage.py realtime_fleet` starts the compose topology."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from realtime.launcher import BASE_DIR, free_port, server_command
from realtime.state import get_state
from realtime.worker.base import LOCK_NAME
from testing.clients import RealSocket, SocketClient
from testing.cluster import ARTIFACTS, assert_quiet, cluster_env, visit

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)
    return value


async def test_fleet_command_runs_instances_and_one_separate_worker(
    redis_settings, redis_prefix, settings, people
):
    ARTIFACTS.mkdir(exist_ok=True)
    ports = [free_port(), free_port()]
    env = {
        **cluster_env(redis_prefix, settings.SECRET_KEY),
        "WORKER_INTERVAL": "0.5",
        "LOG_LEVEL": "INFO",  # the default level, for the log check below
    }
    log_path = ARTIFACTS / "realtime_fleet.log"
    with open(log_path, "wb") as log:
        command = subprocess.Popen(
            [sys.executable, "manage.py", "realtime_fleet"]
            + ["--ports", ",".join(map(str, ports))],
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def worker_pid():
            for line in log_path.read_text().splitlines():
                if line.startswith("worker pid "):
                    return int(line.split()[2])
            assert command.poll() is None, log_path.read_text()
            return None

        pid = await _until(worker_pid, 60, "the fleet did not start")
        assert all(_healthy(p) for p in ports)
        # The separate worker leads; the servers' in-process workers are off.
        owner = await _until(
            lambda: _lock_owner(), 10, "no worker took the leader lock"
        )
        assert f"-{pid}-" in owner
        # The instances share rooms and presence through Redis.
        alice = await SocketClient.open(
            RealSocket(f"ws://127.0.0.1:{ports[0]}/ws/"), people["alice"], join=True
        )
        bob = await SocketClient.open(
            RealSocket(f"ws://127.0.0.1:{ports[1]}/ws/"), people["bob"], join=True
        )
        try:
            ids = (await alice.call("user-list"))["data"]["user_ids"]
            assert ids == sorted([people["alice"].id, people["bob"].id])
        finally:
            await alice.close()
            await bob.close()
        # A token wrongly put in a URL, on each instance.
        for port in ports:
            await visit(port)
    finally:
        command.send_signal(signal.SIGTERM)
        try:
            command.wait(30)
        except subprocess.TimeoutExpired:
            command.kill()
            raise
    # Stopping the command stopped every process it started.
    assert not any(_healthy(p) for p in ports)
    # The servers log to the command's output: no query string, no line per
    # connection.
    text = log_path.read_text(errors="replace")
    assert "uvicorn on http://" in text and "realtime.hub instance" in text
    assert_quiet(text)
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)


async def _lock_owner():
    owner, _ = await get_state().lock_owner(name=LOCK_NAME)
    return owner


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_fleet_command_refuses_without_redis():
    result = subprocess.run(
        [sys.executable, "manage.py", "realtime_fleet", "--ports", str(free_port())],
        cwd=BASE_DIR,
        env={k: v for k, v in os.environ.items() if not k.startswith("REDIS_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


def test_server_command_knows_both_servers_and_nothing_else():
    uvicorn = server_command("uvicorn", host="0.0.0.0", port=8000, limit="10")
    daphne = server_command("daphne", host="0.0.0.0", port=8000, limit="10")
    assert uvicorn[:2] == ["uvicorn", "realtime.asgi:application"]
    assert "--ws-max-size" in uvicorn and daphne[0] == "daphne"
    with pytest.raises(ValueError):
        server_command("gunicorn", host="0.0.0.0", port=8000, limit="10")
