"""What the servers log: no query string in any line, no line per connection at the
default level, under every documented way of running a server (serve.sh, the
README's uvicorn and daphne lines, docker-compose's command; realtime_fleet is
checked in test_launcher.py)."""

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from realtime.launcher import BASE_DIR, free_port, process_stop, server_command
from realtime.logs import (
    ConnectionLinesToDebug,
    RedactQueryStrings,
    redact,
    server_logging_install,
)
from testing.cluster import ARTIFACTS, assert_quiet, database_env, visit


def test_redact_replaces_query_strings_of_paths_only():
    assert redact('"WebSocket /ws/?token=abc.def" [accepted]') == (
        '"WebSocket /ws/?[redacted]" [accepted]'
    )
    assert redact("GET /api/x?a=1&b=2 HTTP/1.1") == "GET /api/x?[redacted] HTTP/1.1"
    assert redact("is it? yes") == "is it? yes"


def record(msg, args, *, level=logging.INFO, name="uvicorn.error", path=""):
    return logging.LogRecord(name, level, path, 1, msg, args, None)


def test_redaction_keeps_the_arguments_shape():
    rec = record('%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", "/?t=x", "1.1", 200))
    assert RedactQueryStrings().filter(rec)
    assert rec.args == ("1.2.3.4:5", "GET", "/?[redacted]", "1.1", 200)
    assert "t=x" not in rec.getMessage()


@pytest.mark.parametrize(
    "path, per_connection",
    [
        ("/venv/site-packages/uvicorn/protocols/websockets/sansio_impl.py", True),
        ("/venv/site-packages/websockets/server.py", True),
        ("/venv/site-packages/uvicorn/server.py", False),
    ],
)
def test_connection_lines_become_debug(path, per_connection):
    quiet = ConnectionLinesToDebug()
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    line = record("connection open", (), path=path)
    assert quiet.filter(line) is not per_connection
    assert line.levelno == (logging.DEBUG if per_connection else logging.INFO)
    logging.getLogger("uvicorn.error").setLevel(logging.DEBUG)
    try:
        assert quiet.filter(record("connection open", (), path=path))
    finally:
        logging.getLogger("uvicorn.error").setLevel(logging.NOTSET)
    warning = record("connection failed", (), level=logging.WARNING, path=path)
    assert quiet.filter(warning) and warning.levelno == logging.WARNING


def test_the_filters_are_installed_once():
    server_logging_install()
    server_logging_install()
    kinds = [type(f) for f in logging.getLogger("uvicorn.error").filters]
    assert kinds.count(RedactQueryStrings) == kinds.count(ConnectionLinesToDebug) == 1


# --- every documented way of running a server ----------------------------------------


def readme_command(program: str) -> list[str]:
    """The README's command line for uvicorn or daphne, as arguments."""
    readme = (BASE_DIR / "README.md").read_text()
    found = re.search(rf"`({program} [^`]*realtime\.asgi:application[^`]*)`", readme)
    assert found, f"no {program} line in the README"
    return found.group(1).split()


def compose_command() -> list[str]:
    """docker-compose.yml's command of an application instance."""
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    return [str(arg) for arg in compose["services"]["app1"]["command"]]


def way(name: str, port: int) -> list[str]:
    """The command of one documented way, on a local port."""
    limit = "1048576"
    if name == "serve.sh":
        return ["bash", "scripts/serve.sh", str(port)]
    if name == "compose":
        cmd = compose_command()
        cmd[cmd.index("--port") + 1] = str(port)
        cmd[cmd.index("--host") + 1] = "127.0.0.1"
        return [sys.executable if a == "python" else a for a in cmd]
    program = name.removeprefix("README ")
    cmd = readme_command(program)
    # The README's lines are the launcher's, which realtime_fleet runs.
    assert cmd == server_command(program, host="0.0.0.0", port="PORT", limit="BYTES")
    values = {"PORT": str(port), "BYTES": limit, "0.0.0.0": "127.0.0.1"}
    return [sys.executable, "-m", *(values.get(a, a) for a in cmd)]


def wait_healthy(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 120  # serve.sh migrates and seeds first
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no server on {port}: {log.read_text()}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "name", ["serve.sh", "README uvicorn", "README daphne", "compose"]
)
async def test_no_query_string_and_no_line_per_connection(name, settings):
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"logs-{name.replace(' ', '-')}.log"
    port = free_port()
    env = {
        **os.environ,
        **database_env(),
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "INFO",  # the default level
        "WORKER_IN_PROCESS": "false",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            way(name, port), cwd=BASE_DIR, env=env, stdout=out, stderr=out
        )
    try:
        await asyncio.to_thread(wait_healthy, proc, port, log)
        await visit(port)
    finally:
        await asyncio.to_thread(process_stop, proc, timeout=20)
    text = log.read_text(errors="replace")
    # The server did log at INFO (the hub starts with the first socket) ...
    assert "realtime.hub instance" in text, text
    # ... but no query string, and no line for the socket or the requests.
    assert_quiet(text)
