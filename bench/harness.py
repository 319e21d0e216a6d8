"""What every benchmark shares: the service options, a fresh database and Redis prefix
per run, Django set up on them, processes to spawn, and the measures themselves
(CPU and memory from /proc, percentiles).

Top-level imports stay in the standard library: the emitter and worker processes
import this module, and their start-up counts in the CPU they report.
"""

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

# Processes are started from the project root, so `python -m bench.…` finds the
# package and the apps without touching sys.path.
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


# --- measures ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core: what the
    other programs on a shared machine took shows as busy time not ours."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def measured_phase(run: Callable[[], dict]) -> dict:
    """`run()`'s results, with how loaded the machine was around it ("load")."""
    # The machine is shared: what else ran says how far to trust a figure.
    load = os.getloadavg()[0]
    busy0, total0 = machine_cpu()
    # What the run set up so far (Django, the seeded users, the earlier phases'
    # leftovers) out of the collector's reach: collecting it pauses every client of
    # this process, in whichever phase it happens to fall.
    gc.collect()
    gc.freeze()
    result = run()
    busy, total = machine_cpu()
    result["load"] = {
        "before": load,
        "after": os.getloadavg()[0],
        "machine_busy_percent": 100 * (busy - busy0) / (total - total0),
    }
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of the values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- services: database, Redis, Django ----------------------------------------------


def add_service_args(parser) -> None:
    """The options every benchmark shares: which database, and where the services
    are (prepare_database reads them)."""
    parser.add_argument(
        "--database", choices=["postgres", "sqlite"], default="postgres"
    )
    parser.add_argument(
        "--postgres-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")


def add_scale_args(parser) -> None:
    """The scale of bench.scale's scenarios (bench/scale/scenarios.py), at the
    defaults of its full-scale run."""
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=250)


def add_round_args(parser, compared: str) -> None:
    """The rounds of a benchmark that compares two setups (`compared` names them),
    and the ASGI server they run under."""
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help=f"rounds of every {compared}, the order flipped each round (medians)",
    )
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")


def prepare_database(args) -> dict:
    """A fresh database for the run; returns the env that points at it (keys with a
    leading underscore are for drop_database only)."""
    if args.database == "postgres":
        import psycopg

        name = f"rt_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = args.postgres_admin_url.rsplit("/", 1)[0]
        return {"DATABASE_URL": f"{base}/{name}", "_PG_DB": name}
    path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    return {"SQLITE_PATH": str(path), "DATABASE_URL": ""}


def drop_database(args, db_env: dict) -> None:
    """Drop the run's PostgreSQL database (a SQLite file is left in its temp dir)."""
    if args.database == "postgres" and db_env.get("_PG_DB"):
        import psycopg

        with psycopg.connect(args.postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_env["_PG_DB"]}" WITH (FORCE)')


def flush_redis(url: str, prefix: str) -> None:
    """Delete the run's keys."""
    import redis

    client = redis.Redis.from_url(url)
    for match in (f"{{{prefix}}}:*", f"{prefix}:*"):
        for key in client.scan_iter(match=match, count=1000):
            client.delete(key)


def configure(env: dict) -> None:
    """Set up Django in this process on the run's environment."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")
    import django

    django.setup()


@contextmanager
def run_services(args, *, name: str, **settings_env: str) -> Iterator[dict]:
    """One run's services: a fresh, migrated database and a Redis key prefix of its
    own (`rt-{name}-…`), with Django set up on them in this process.

    Yields the environment for the server and emitter processes (with this process's
    SECRET_KEY, so tokens made here are valid there); `settings_env` adds settings
    to it. The database and the prefix's keys are removed afterwards."""
    prefix = f"rt-{name}-{uuid.uuid4().hex[:8]}"
    db_env = prepare_database(args)
    env = {
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
        **settings_env,
        **{k: v for k, v in db_env.items() if not k.startswith("_")},
    }
    try:
        configure(env)
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        env["SECRET_KEY"] = settings.SECRET_KEY
        yield env
    finally:
        drop_database(args, db_env)
        flush_redis(args.redis_url, prefix)


# --- processes ----------------------------------------------------------------------


def module_command(module: str, *args: str) -> list[str]:
    """The command that runs a module of this project (`python -m module args`)."""
    return [sys.executable, "-m", module, *args]


async def run_module(module: str, *args: str, env: dict):
    """Start `python -m module args` from the project root; the asyncio process."""
    return await asyncio.create_subprocess_exec(
        *module_command(module, *args), cwd=ROOT, env={**os.environ, **env}
    )


def plan_files(plan: dict) -> tuple[Path, Path]:
    """Write a spawned process's plan to a temporary file; (plan path, where it
    writes its results)."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / "plan.json").write_text(json.dumps(plan))
    return tmp / "plan.json", tmp / "out.json"


@dataclass
class Spawned:
    """A reference server process (socketio or ceiling) on a port."""

    cmd: list[str]
    port: int
    env: dict
    health_path: str
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Spawned":
        """Start it and wait until it answers HTTP on its port."""
        from realtime.launcher import die_with_parent

        # As our own servers do: a benchmark killed mid-run leaves no reference
        # server behind, still subscribed to the shared Redis.
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env={**os.environ, **self.env},
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd} exited with {self.proc.returncode}")
            try:
                url = f"http://{HOST}:{self.port}{self.health_path}"
                with urllib.request.urlopen(url, timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers HTTP: up (the ceiling refuses plain GETs)
            except OSError:
                time.sleep(0.1)
        self.terminate()
        raise RuntimeError(f"{self.cmd} did not start")

    def terminate(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after 10 s."""
        from realtime.launcher import process_stop

        if self.proc is not None:
            process_stop(self.proc, timeout=10)


# --- our protocol over `websockets` (stream and notes clients) ---------------------


@asynccontextmanager
async def signed_in(url: str, token: str, **options):
    """A `websockets` connection to our server, past its `connect` event."""
    import websockets

    async with websockets.connect(url, **options) as ws:
        hello = {"event": "connect", "data": {"token": token}, "ack": 0}
        await ws.send(json.dumps(hello))
        await ws.recv()
        yield ws


async def request(ws, event: str, data: dict, ack: int) -> dict:
    """Send an event and wait for its ack (frames before it are dropped)."""
    await ws.send(json.dumps({"event": event, "data": data, "ack": ack}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("ack") == ack:
            return frame
