"""Run a cleanup worker until SIGTERM or SIGINT (one per instance; one leads)."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from realtime.management.commands._common import fleet_mode
from realtime.state import get_state
from realtime.worker import Worker


class Command(BaseCommand):
    help = (
        "Run the cleanup worker: competes for the leader lock in Redis and, while it "
        "leads, runs every cleanup job each WORKER_INTERVAL. Stops on SIGTERM/SIGINT."
    )

    def handle(self, *args, **options):
        if not fleet_mode():
            self.stderr.write(
                "No REDIS_URL: the embedded server runs its worker in-process; this "
                "process can only clean up its own (empty) state."
            )
        asyncio.run(self._run())

    async def _run(self) -> None:
        worker = Worker()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        self.stdout.write(f"worker {worker.owner} running", ending="\n")
        self.stdout.flush()
        try:
            await worker.run()
        finally:
            await get_state().close()
