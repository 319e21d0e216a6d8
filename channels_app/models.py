import uuid

from django.conf import settings
from django.db import models


def new_channel_id() -> str:
    """A channel id: a UUID string, as Open WebUI uses."""
    return str(uuid.uuid4())


class Channel(models.Model):
    """A conversation between members: a named group, or a direct one between two."""

    class Kind(models.TextChoices):
        GROUP = "group"
        DIRECT = "direct"

    id = models.CharField(primary_key=True, max_length=64, default=new_channel_id)
    name = models.CharField(max_length=128, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.GROUP)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="owned_channels",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name or self.id


class ChannelMember(models.Model):
    """A user's membership of a channel, with their read position."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="members"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="channel_memberships",
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    last_read_at = models.DateTimeField(null=True, blank=True)
    # Muted: the member's clients are told not to notify; unread still counts.
    is_muted = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "user"], name="unique_channel_member"
            )
        ]

    @property
    def can_manage(self) -> bool:
        """Owners and channel admins add and remove members."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class ChannelMessage(models.Model):
    """A message in a channel; `parent` makes it a reply in a thread."""

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="messages"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="channel_messages",
    )
    content = models.TextField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["channel", "-id"])]


# A reaction's name: an emoji or a shortcode such as "thumbsup"; the bound keeps a
# reaction from being a second message body.
MAX_REACTION_NAME = 64


class ChannelMessageReaction(models.Model):
    """A user's reaction to a message, by name; one per message, user and name."""

    message = models.ForeignKey(
        ChannelMessage, on_delete=models.CASCADE, related_name="reactions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="channel_reactions",
    )
    name = models.CharField(max_length=MAX_REACTION_NAME)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "name"], name="unique_message_reaction"
            )
        ]
