"""Run one pass of every cleanup job now (or say what it would do)."""

from django.core.management.base import BaseCommand, CommandError

from realtime.management.commands._common import EMBEDDED_NOTE, fleet_mode, run
from realtime.worker import run_pass


class Command(BaseCommand):
    help = (
        "One pass of every cleanup worker job: usage marks, dead instances, document "
        "members, note compaction, task keys. Does not need the leader lock: every "
        "job is idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="only say what would be done"
        )

    def handle(self, *args, **options):
        if not fleet_mode():
            self.stderr.write(EMBEDDED_NOTE)
        dry_run = options["dry_run"]
        results = run(run_pass(dry_run=dry_run))
        verb = "would clean" if dry_run else "cleaned"
        failed = []
        for result in results:
            if result.error:
                failed.append(result.job)
                self.stdout.write(f"{result.job}: FAILED: {result.error}")
                continue
            self.stdout.write(f"{result.job}: {verb} {result.count}")
            for line in result.details:
                self.stdout.write(f"  {line}")
        if failed:
            raise CommandError(f"jobs failed: {', '.join(failed)}")
