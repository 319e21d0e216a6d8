"""Start real server processes (daphne or uvicorn) on local ports: tests, benches."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """One server instance: an ASGI server process serving realtime.asgi."""

    port: int
    env: dict[str, str]
    server: str = "daphne"
    log_path: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        """Start the process and wait until /healthz answers."""
        # The server's own frame limit matches ours, so it refuses (1009) before
        # buffering a huge frame; see MAX_FRAME_BYTES.
        limit = str(
            self.env.get("MAX_FRAME_BYTES")
            or os.environ.get("MAX_FRAME_BYTES")
            or 1024 * 1024
        )
        if self.server == "uvicorn":
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "realtime.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--ws-max-size",
                limit,
                # Compressing every small JSON frame costs more CPU than it saves.
                "--ws-per-message-deflate",
                "false",
            ]
        else:
            cmd = [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--websocket-max-message-size",
                limit,
                "--websocket-max-frame-size",
                limit,
                "realtime.asgi:application",
            ]
        env = {**os.environ, **self.env}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
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
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """Stop at once with SIGKILL: no cleanup runs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.kill()
        return self.proc.wait()
