"""Stop a running task, or every task of an item, wherever it runs."""

from django.core.management.base import BaseCommand, CommandError

from realtime import tasks
from realtime.management.commands._common import require_fleet, run


class Command(BaseCommand):
    help = "Stop task TASK_ID, or every task of --item ITEM_ID, on any instance."

    def add_arguments(self, parser):
        parser.add_argument("task_id", nargs="?")
        parser.add_argument("--item", metavar="ITEM_ID")

    def handle(self, *args, **options):
        if bool(options["task_id"]) == bool(options["item"]):
            raise CommandError("give a TASK_ID or --item ITEM_ID")
        require_fleet()
        # The tasks learn that an operator stopped them (a generation stores it).
        reason = tasks.STOPPED_BY_ADMIN
        if options["item"]:
            stopped = run(tasks.stop_item_tasks(options["item"], reason=reason))
            self.stdout.write(
                f"stopped {len(stopped)} tasks of item {options['item']}"
                + "".join(f"\n  {tid}" for tid in sorted(stopped))
            )
            return
        if not run(tasks.stop_task(options["task_id"], reason=reason)):
            raise CommandError(f"task {options['task_id']} not found or not stopped")
        self.stdout.write(f"stopped task {options['task_id']}")
