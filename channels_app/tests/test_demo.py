"""seed_demo gives the channels page a channel of every demo user."""

import io

import pytest
from django.core.management import call_command

from channels_app import selectors
from channels_app.models import Channel
from realtime.demo import DEMO_USERS
from realtime.models import User

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_makes_one_channel_of_every_demo_user():
    output = seed()
    channel = Channel.objects.get()
    assert (channel.name, channel.kind, channel.owner.username) == (
        "general",
        "group",
        "alice",
    )
    members = User.objects.filter(
        id__in=selectors.channel_member_ids(channel_id=channel.id)
    )
    assert sorted(u.username for u in members) == sorted(u for u, *_ in DEMO_USERS)
    assert "Demo channel: #general" in output and "(created)" in output


def test_seeding_again_adds_what_is_missing_and_nothing_twice():
    seed()
    channel = Channel.objects.get()
    channel.members.filter(user__username="carol").delete()
    output = seed()
    assert Channel.objects.count() == 1
    assert len(selectors.channel_member_ids(channel_id=channel.id)) == len(DEMO_USERS)
    assert "Demo channel: #general" in output and "(exists)" in output
