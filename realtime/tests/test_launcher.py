"""The local launcher: `manage.py realtime_fleet` starts the compose topology."""

import asyncio
import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

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


@contextlib.contextmanager
def _fleet_command(log_path: Path, env: dict, *args: str):
    """`manage.py realtime_fleet *args`, its output in log_path; SIGTERM at the end."""
    with open(log_path, "wb") as log:
        command = subprocess.Popen(
            [sys.executable, "manage.py", "realtime_fleet", *args],
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield command
    finally:
        command.send_signal(signal.SIGTERM)
        try:
            command.wait(30)
        except subprocess.TimeoutExpired:
            command.kill()
            raise


async def _started(command: subprocess.Popen, log_path: Path) -> int:
    """Wait until the command says its fleet runs; the worker's pid."""

    async def worker_pid():
        for line in log_path.read_text().splitlines():
            if line.startswith("worker pid "):
                return int(line.split()[2])
        assert command.poll() is None, log_path.read_text()
        return None

    return await _until(worker_pid, 60, "the fleet did not start")


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
    with _fleet_command(log_path, env, "--ports", ",".join(map(str, ports))) as cmd:
        pid = await _started(cmd, log_path)
        assert all(_healthy(p) for p in ports)
        # The separate worker leads; the servers' in-process workers are off.
        owner = await _until(
            lambda: _lock_owner(), 10, "no worker took the leader lock"
        )
        assert f"-{pid}-" in owner
        # The instances share rooms and presence through Redis.
        await _see_each_other(ports, people)
        # A token wrongly put in a URL, on each instance.
        for port in ports:
            await visit(port)
    # Stopping the command stopped every process it started.
    assert not any(_healthy(p) for p in ports)
    # The servers log to the command's output: no query string, no line per
    # connection.
    text = log_path.read_text(errors="replace")
    assert "uvicorn on http://" in text and "realtime.hub instance" in text
    assert_quiet(text)
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)


async def _see_each_other(ports: list[int], people) -> None:
    """alice on the first instance, bob on the second: each sees both online."""
    alice = await SocketClient.open(
        RealSocket(f"ws://127.0.0.1:{ports[0]}/ws/"), people["alice"], join=True
    )
    bob = await SocketClient.open(
        RealSocket(f"ws://127.0.0.1:{ports[1]}/ws/"), people["bob"], join=True
    )
    try:
        ids = sorted([people["alice"].id, people["bob"].id])
        assert (await alice.call("user-list"))["data"]["user_ids"] == ids
        assert (await bob.call("user-list"))["data"]["user_ids"] == ids
    finally:
        await alice.close()
        await bob.close()


async def _lock_owner():
    owner, _ = await get_state().lock_owner(name=LOCK_NAME)
    return owner


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def _children_env(pid: int) -> list[dict[str, str]]:
    """The environment of each process `pid` started."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = children.read().split()
    out = []
    for child in pids:
        with open(f"/proc/{child}/environ", "rb") as environ:
            pairs = environ.read().split(b"\0")
        out.append(dict(p.decode().split("=", 1) for p in pairs if b"=" in p))
    return out


def _cluster_line(text: str) -> tuple[list[int], Path]:
    """The node ports and the data directory the command printed."""
    match = re.search(r"redis cluster on \S+ \(nodes (\S+); logs in (\S+)\)", text)
    assert match, text
    ports = [int(node.rsplit(":", 1)[1]) for node in match.group(1).split(",")]
    return ports, Path(match.group(2))


async def test_fleet_command_on_a_redis_cluster_of_its_own(
    settings, redis_prefix, people
):
    ARTIFACTS.mkdir(exist_ok=True)
    ports = [free_port(), free_port()]
    env = {
        **cluster_env(redis_prefix, settings.SECRET_KEY),
        "REDIS_URL": "",
        "WORKER_INTERVAL": "0.5",
        "INSTANCE_TTL": "",  # the command's own, from its nodes' timeout
    }
    log_path = ARTIFACTS / "realtime_fleet_cluster.log"
    args = ("--redis-cluster", "--ports", ",".join(map(str, ports)))
    with _fleet_command(log_path, env, *args) as command:
        pid = await _started(command, log_path)
        nodes, data = _cluster_line(log_path.read_text())
        assert len(nodes) == 6 and data.is_dir()
        # One cluster of 6: 3 primaries serving every slot, each with a replica.
        info = redis.Redis(port=nodes[0], decode_responses=True).cluster("info")
        assert info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "6"
        assert info["cluster_size"] == "3" and info["cluster_slots_ok"] == "16384"
        assert all(_healthy(p) for p in ports)
        # Every instance and the worker were told to use it.
        children = _children_env(command.pid)
        assert len(children) == 3 + 6, children  # 2 servers, worker, 6 nodes
        fleet = [c for c in children if "REDIS_CLUSTER" in c]
        assert len(fleet) == 3
        for child in fleet:
            assert child["REDIS_CLUSTER"] == "true"
            assert child["REDIS_URL"] == f"redis://127.0.0.1:{nodes[0]}/0"
            assert child["REDIS_CLUSTER_NODES"].split(",") == [
                f"127.0.0.1:{p}" for p in nodes
            ]
            assert child["INSTANCE_TTL"] == "20"  # 4 node timeouts of 5 s
        # And they work on it: presence is shared, the worker's lock is there.
        await _see_each_other(ports, people)
        cluster = RedisCluster(host="127.0.0.1", port=nodes[0], decode_responses=True)
        lock = f"{{{redis_prefix}}}:lock:{LOCK_NAME}"
        owner = await _until(
            lambda: asyncio.to_thread(cluster.get, lock), 10, "no lock in the cluster"
        )
        assert f"-{pid}-" in owner
        cluster.close()
    assert command.returncode == 0, log_path.read_text()
    # Stopping the command stopped the fleet and the cluster, and deleted its files.
    assert not any(_healthy(p) for p in ports)
    for port in nodes:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not data.exists()


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


def test_server_command_passes_the_ping_to_either_server():
    uvicorn = server_command("uvicorn", host="h", port=1, limit="10", ping=(7, 3))
    daphne = server_command("daphne", host="h", port=1, limit="10", ping=(7, 3))
    for flag, value in [("--ws-ping-interval", "7"), ("--ws-ping-timeout", "3")]:
        assert uvicorn[uvicorn.index(flag) + 1] == value
    for flag, value in [("--ping-interval", "7"), ("--ping-timeout", "3")]:
        assert daphne[daphne.index(flag) + 1] == value
    assert daphne[-1] == "realtime.asgi:application"


def test_ws_ping_reads_ours_then_open_webuis_names():
    from realtime.environ import ws_ping

    assert ws_ping({}) == (25, 20)
    theirs = {
        "WEBSOCKET_SERVER_PING_INTERVAL": "5",
        "WEBSOCKET_SERVER_PING_TIMEOUT": "2",
    }
    assert ws_ping(theirs) == (5, 2)
    assert ws_ping({**theirs, "WS_PING_INTERVAL": "9"}) == (9, 2)


def _silent_peer(port: int) -> socket.socket:
    """A WebSocket peer that completes the handshake and then never answers a ping:
    a client whose network vanished without a TCP close."""
    peer = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    peer.sendall(
        (
            "GET /ws/socket.io/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += peer.recv(1024)
    assert head.startswith(b"HTTP/1.1 101"), head
    return peer


def _until_closed(peer: socket.socket, within: float) -> tuple[float, set[int]]:
    """Read without answering until the server closes; (seconds, opcodes seen)."""
    start = time.monotonic()
    opcodes: set[int] = set()
    peer.settimeout(within)
    while True:
        try:
            data = peer.recv(4096)
        except TimeoutError:
            raise AssertionError(f"still open after {within} s: {opcodes}") from None
        except ConnectionResetError:  # daphne aborts the TCP connection
            data = b""
        if not data:
            return time.monotonic() - start, opcodes
        # Server frames are small and unmasked: the first byte of a read is usually
        # a frame's; enough to tell pings (9) and the close (8) apart.
        opcodes.add(data[0] & 0x0F)


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
async def test_the_servers_ping_closes_a_peer_that_stopped_answering(server, settings):
    """WEBSOCKET_SERVER_PING_* (Open WebUI's names) reach the ASGI server: a silent
    peer is pinged and closed; a peer that answers stays connected."""
    from realtime.launcher import ServerProcess
    from testing.cluster import database_env

    process = ServerProcess(
        port=free_port(),
        server=server,
        env={
            "SECRET_KEY": settings.SECRET_KEY,
            "AUTH_TIMEOUT": "60",  # only the ping may close the sockets here
            "WEBSOCKET_SERVER_PING_INTERVAL": "1",
            "WEBSOCKET_SERVER_PING_TIMEOUT": "1",
            **database_env(),
        },
    ).start()
    try:
        answering = RealSocket(f"ws://127.0.0.1:{process.port}/ws/", ping_interval=None)
        await answering.open()
        peer = await asyncio.to_thread(_silent_peer, process.port)
        # uvicorn: ping at 1 s, close at 2 s; daphne checks every 2 s, so up to ~5 s.
        took, opcodes = await asyncio.to_thread(_until_closed, peer, 12)
        peer.close()
        assert 0.9 < took < 12, took
        assert 9 in opcodes, f"the server never pinged: {opcodes}"
        # The peer that answered pings through the same time is still connected.
        assert await answering.nothing(0.1)
        assert answering.conn.state.name == "OPEN"
        await answering.close()
    finally:
        process.terminate()
