"""The channels demo's data: one group channel of every demo user, so a newcomer's
first view of the channels page is a channel, not "No channel"."""

from django.dispatch import receiver

from channels_app import selectors, services
from channels_app.models import Channel
from realtime.demo import demo_seeded

DEMO_CHANNEL = "general"
DEMO_CHANNEL_OWNER = "alice"  # the user the login page suggests


@receiver(demo_seeded)
def demo_channel_seed(sender, *, users: dict, **kwargs) -> str:
    """Create #general with every demo user, or add the demo users it lacks."""
    owner = users[DEMO_CHANNEL_OWNER]
    channel = Channel.objects.filter(
        name=DEMO_CHANNEL, kind=Channel.Kind.GROUP, owner=owner
    ).first()
    if channel is None:
        services.channel_create(
            owner=owner,
            name=DEMO_CHANNEL,
            kind=Channel.Kind.GROUP,
            member_ids=[u.id for u in users.values()],
        )
        state = "created"
    else:
        members = set(selectors.channel_member_ids(channel_id=channel.id))
        for user in users.values():
            if user.id not in members:
                services.channel_member_add(
                    actor_id=owner.id, channel_id=channel.id, user_id=user.id
                )
        state = "exists"
    return f"Demo channel: #{DEMO_CHANNEL} with {', '.join(users)} ({state})"
