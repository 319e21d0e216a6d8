"""Start real server processes (daphne or uvicorn) on local ports: tests, benches."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from realtime.environ import WS_PING_INTERVAL_DEFAULT, WS_PING_TIMEOUT_DEFAULT, ws_ping

BASE_DIR = Path(__file__).resolve().parent.parent


def die_with_parent() -> None:
    """Run in a child before exec (Linux): it gets SIGTERM when the process that
    started it dies, so a test run or a fleet that crashes leaves no servers behind
    (they would go on serving, and working on, the same database and Redis)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_stop(
    proc: subprocess.Popen, *, timeout: float = 10.0, signalled: bool = False
) -> int:
    """Stop a process gracefully (SIGTERM, unless `signalled` already), then with
    SIGKILL if it does not exit in time; returns its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    if not signalled:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def server_command(
    server: str,
    *,
    host: str,
    port: int | str,
    limit: str,
    ping: tuple[int | str, int | str] = (
        WS_PING_INTERVAL_DEFAULT,
        WS_PING_TIMEOUT_DEFAULT,
    ),
) -> list[str]:
    """Arguments after `python -m` that serve realtime.asgi with daphne or uvicorn.

    The one place the servers' flags live: the launcher, scripts and
    docker-compose.yml (checked by test_deploy) all run these. `ping` is
    (WS_PING_INTERVAL, WS_PING_TIMEOUT): the server's WebSocket ping, which closes a
    peer that stopped answering.
    """
    interval, timeout = (str(value) for value in ping)
    if server == "uvicorn":
        return [
            "uvicorn",
            "realtime.asgi:application",
            "--host",
            host,
            "--port",
            str(port),
            "--no-access-log",
            # uvicorn's INFO lines ("connection open", "[accepted]") cost CPU on every
            # connect and say nothing /metrics does not; warnings and errors remain.
            "--log-level",
            "warning",
            "--ws-max-size",
            limit,
            # Compressing every small JSON frame costs more CPU than it saves.
            "--ws-per-message-deflate",
            "false",
            "--ws-ping-interval",
            interval,
            "--ws-ping-timeout",
            timeout,
        ]
    if server == "daphne":
        return [
            "daphne",
            "-b",
            host,
            "-p",
            str(port),
            # No access log: daphne writes it to stdout itself, three lines per socket
            # and HTTP paths with their query strings. Its other logging follows
            # settings.LOGGING (LOG_LEVEL), which Django sets up after this flag.
            "--verbosity",
            "0",
            "--websocket-max-message-size",
            limit,
            "--websocket-max-frame-size",
            limit,
            # daphne pings a socket idle this long, and closes it when the pong does
            # not come within the timeout.
            "--ping-interval",
            interval,
            "--ping-timeout",
            timeout,
            "realtime.asgi:application",
        ]
    raise ValueError(f"unknown ASGI server {server!r}")


@dataclass
class ServerProcess:
    """One server instance: an ASGI server process serving realtime.asgi."""

    port: int
    env: dict[str, str]
    server: str = "daphne"
    log_path: Path | None = None
    # Without a log path the output is dropped, unless it goes to this process's own
    # stdout and stderr (realtime_fleet, where an operator reads it).
    inherit_output: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        """Start the process and wait until /healthz answers."""
        return self.spawn().wait_healthy(timeout)

    def spawn(self) -> "ServerProcess":
        """Start the process without waiting for it (wait_healthy does)."""
        # The server's own frame limit matches ours, so it refuses (1009) before
        # buffering a huge frame; see MAX_FRAME_BYTES.
        limit = str(
            self.env.get("MAX_FRAME_BYTES")
            or os.environ.get("MAX_FRAME_BYTES")
            or 16 * 1024 * 1024
        )
        env = {**os.environ, **self.env}
        cmd = [
            sys.executable,
            "-m",
            *server_command(
                self.server,
                host="127.0.0.1",
                port=self.port,
                limit=limit,
                ping=ws_ping(env),
            ),
        ]
        if self.log_path:
            out = open(self.log_path, "ab")
        else:
            out = None if self.inherit_output else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd,
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        return self

    def wait_healthy(self, timeout: float = 30.0) -> "ServerProcess":
        """Wait until /healthz answers; kill the process if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server on port {self.port} exited with {self.proc.returncode}"
                )
            try:
                with urllib.request.urlopen(
                    f"{self.http}/healthz", timeout=1
                ) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server on port {self.port} did not become healthy")

    def terminate(self, timeout: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time."""
        return process_stop(self.proc, timeout=timeout) if self.proc else None

    def kill(self) -> int | None:
        """Stop at once with SIGKILL: no cleanup runs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.kill()
        return self.proc.wait()


@dataclass
class WorkerProcess:
    """The cleanup worker on its own: `manage.py realtime_worker`."""

    env: dict[str, str]
    log_path: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout: float = 30.0) -> "WorkerProcess":
        """Start the worker and wait until it says it runs."""
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="realtime-worker-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "realtime_worker"],
                cwd=BASE_DIR,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}")
            if b" running" in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("worker did not start")

    terminate = ServerProcess.terminate
    kill = ServerProcess.kill


@dataclass
class Fleet:
    """The compose topology without Docker: N server processes plus one worker.

    Every process gets the same environment (so the same SECRET_KEY, Redis and
    database); with a separate worker the servers' in-process workers are off, as in
    docker-compose.yml. `servers` names the ASGI server of each instance.
    """

    env: dict[str, str]
    servers: list[str] = field(default_factory=lambda: ["uvicorn", "uvicorn"])
    ports: list[int] | None = None
    worker: bool = True
    log_dir: Path | None = None
    inherit_output: bool = False  # without log_dir: the servers' output is ours
    name: str = "fleet"
    instances: list[ServerProcess] = field(default_factory=list)
    worker_process: WorkerProcess | None = None

    def _log(self, suffix: str) -> Path | None:
        if self.log_dir is None:
            return None
        path = self.log_dir / f"{self.name}-{suffix}.log"
        path.unlink(missing_ok=True)
        return path

    def start(self) -> "Fleet":
        """Start every instance at once (a server spends its first second importing
        Django, on a core of its own), wait until each is healthy, then the worker."""
        ports = self.ports or [free_port() for _ in self.servers]
        if len(ports) != len(self.servers):
            raise ValueError("one port per server")
        env = dict(self.env)
        if self.worker:
            env["WORKER_IN_PROCESS"] = "false"
        try:
            for i, (server, port) in enumerate(
                zip(self.servers, ports, strict=True), start=1
            ):
                process = ServerProcess(
                    port=port,
                    env=env,
                    server=server,
                    log_path=self._log(f"instance{i}"),
                    inherit_output=self.inherit_output,
                )
                self.instances.append(process.spawn())
            for process in self.instances:
                process.wait_healthy()
            if self.worker:
                self.worker_process = WorkerProcess(
                    env=env, log_path=self._log("worker")
                ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process gracefully (SIGTERM, then SIGKILL after a grace)."""
        if self.worker_process is not None:
            self.worker_process.terminate()
        # All at once: each shutdown is mostly waiting (the hub's loops, a grace).
        running = [p.proc for p in self.instances if p.proc and p.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            process_stop(proc, signalled=True)

    def __enter__(self) -> "Fleet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
