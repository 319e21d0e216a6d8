"""Run the compose topology on this machine: N server processes and one worker, on
REDIS_URL (or Sentinel), or on a local Redis Cluster of its own (--redis-cluster)."""

import os
import signal
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from realtime.launcher import Fleet
from realtime.launcher_cluster import LocalRedisCluster
from realtime.management.commands._common import fleet_mode


class Command(BaseCommand):
    help = (
        "Start N server instances on the given ports plus one cleanup worker (the "
        "servers' in-process workers off), against REDIS_URL (or REDIS_SENTINELS) and "
        "DATABASE_URL, like docker-compose.yml without Docker. Stops on SIGTERM/SIGINT."
        " With --redis-cluster: on a local Redis Cluster it starts and stops itself."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ports",
            default="8001,8002",
            help="comma-separated ports, one instance each (default 8001,8002)",
        )
        parser.add_argument(
            "--server",
            choices=["uvicorn", "daphne"],
            default="uvicorn",
            help="ASGI server of every instance (default uvicorn, the faster here)",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="no separate worker: each server runs its in-process worker instead",
        )
        parser.add_argument(
            "--redis-cluster",
            action="store_true",
            help="start a local Redis Cluster (3 primaries, 3 replicas of "
            "redis-server) and run the instances on it (REDIS_CLUSTER=true); it is "
            "stopped, and its files deleted, when the command stops",
        )

    def handle(self, *args, **options):
        if not (fleet_mode() or options["redis_cluster"]):
            raise CommandError(
                "Set REDIS_URL (or REDIS_SENTINELS), or pass --redis-cluster: "
                "instances share rooms and presence only through Redis."
            )
        try:
            ports = [int(p) for p in options["ports"].split(",") if p.strip()]
        except ValueError:
            raise CommandError("--ports takes comma-separated numbers") from None
        if not ports:
            raise CommandError("--ports names no port")
        call_command("migrate", verbosity=0, interactive=False)
        # Every process must sign and check tokens with the same key.
        env = {"SECRET_KEY": os.environ.get("SECRET_KEY") or settings.SECRET_KEY}
        redis_cluster = LocalRedisCluster() if options["redis_cluster"] else None
        if redis_cluster is not None:
            env.update(redis_cluster.fleet_env())
            if os.environ.get("INSTANCE_TTL"):
                env["INSTANCE_TTL"] = os.environ["INSTANCE_TTL"]  # the operator's
        fleet = Fleet(
            env=env,
            servers=[options["server"]] * len(ports),
            ports=ports,
            worker=not options["no_worker"],
            # The servers log to this command's output, as one server would.
            inherit_output=True,
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            if redis_cluster is not None:
                redis_cluster.start()
                self.stdout.write(
                    f"redis cluster on {redis_cluster.url} (nodes "
                    f"{redis_cluster.nodes}; logs in {redis_cluster.dir})"
                )
                self.stdout.flush()
            fleet.start()
            for process in fleet.instances:
                self.stdout.write(f"{process.server} on {process.http} ({process.ws})")
            if fleet.worker_process is not None:
                worker = fleet.worker_process
                self.stdout.write(
                    f"worker pid {worker.proc.pid} (log {worker.log_path})"
                )
            self.stdout.flush()
            while not stop.wait(0.5):
                for process in fleet.instances:
                    if process.proc.poll() is not None:
                        raise CommandError(
                            f"instance on port {process.port} exited with "
                            f"{process.proc.returncode}"
                        )
        finally:
            fleet.stop()
            if redis_cluster is not None:
                redis_cluster.stop()
