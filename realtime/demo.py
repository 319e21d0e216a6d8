"""The demo's data: the demo users, and a signal the apps use to add their own."""

from django.dispatch import Signal

from realtime.models import User

DEMO_USERS = [
    # username, display name, role; the password is the username + "-demo"
    ("admin", "Ada Admin", User.Role.ADMIN),
    ("alice", "Alice", User.Role.USER),
    ("bob", "Bob", User.Role.USER),
    ("carol", "Carol", User.Role.USER),
]

# Sent by demo_seed with users={username: User}, after the demo users exist. A
# receiver adds its app's demo data (only what is missing) and returns one line for
# the operator, so the core needs no import of the apps.
demo_seeded = Signal()


def demo_seed() -> list[str]:
    """Create what is missing of the demo (users first); returns lines to print."""
    lines = ["Demo users (username / password):"]
    users = {}
    for username, name, role in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"name": name, "role": role}
        )
        if created:
            user.set_password(f"{username}-demo")
            if role == User.Role.ADMIN:
                user.is_staff = user.is_superuser = True
            user.save()
        users[username] = user
        state = "created" if created else "exists"
        lines.append(f"  {username:<6} / {username}-demo   ({role}, {state})")
    for _, line in demo_seeded.send(sender=demo_seed, users=users):
        if line:
            lines.append(line)
    return lines
