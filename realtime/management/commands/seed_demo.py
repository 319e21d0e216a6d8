"""Create the demo users and the apps' demo data (if missing); print the credentials."""

from django.core.management.base import BaseCommand

from realtime.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create demo users admin, alice, bob, carol (password: <username>-demo) and "
        "the apps' demo data, such as a channel of all of them."
    )

    def handle(self, *args, **options):
        for line in demo_seed():
            self.stdout.write(line)
