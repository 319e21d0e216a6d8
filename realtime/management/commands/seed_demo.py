"""Create the demo users (if missing) and print their credentials."""

from django.core.management.base import BaseCommand

from realtime.models import User

DEMO_USERS = [
    # username, display name, role
    ("admin", "Ada Admin", User.Role.ADMIN),
    ("alice", "Alice", User.Role.USER),
    ("bob", "Bob", User.Role.USER),
    ("carol", "Carol", User.Role.USER),
]


class Command(BaseCommand):
    help = "Create demo users admin, alice, bob, carol (password: <username>-demo)."

    def handle(self, *args, **options):
        self.stdout.write("Demo users (username / password):")
        for username, name, role in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"name": name, "role": role}
            )
            if created:
                user.set_password(f"{username}-demo")
                if role == User.Role.ADMIN:
                    user.is_staff = user.is_superuser = True
                user.save()
            state = "created" if created else "exists"
            self.stdout.write(f"  {username:<6} / {username}-demo   ({role}, {state})")
