"""Reads for channels."""

from django.db.models import Count, F, Q

from channels_app.models import ChannelMember, ChannelMessage

PAGE_MAX = 100


def channel_list_for(*, user_id: int) -> list[dict]:
    """The user's channels with their unread counts (messages by others, not deleted,
    after the user's read position). A muted channel counts the same: muting says
    "do not notify me", not "I have read it", and its row says `is_muted`."""
    unread = Count(
        "channel__messages",
        filter=Q(channel__messages__deleted_at__isnull=True)
        & ~Q(channel__messages__author_id=user_id)
        & (
            Q(last_read_at__isnull=True)
            | Q(channel__messages__created_at__gt=F("last_read_at"))
        ),
    )
    rows = (
        ChannelMember.objects.filter(user_id=user_id)
        .select_related("channel")
        .annotate(unread_count=unread)
        .order_by("-channel__updated_at")
    )
    return [
        {
            "id": m.channel.id,
            "name": m.channel.name,
            "kind": m.channel.kind,
            "role": m.role,
            "last_read_at": m.last_read_at.isoformat() if m.last_read_at else None,
            "unread_count": m.unread_count,
            "is_muted": m.is_muted,
        }
        for m in rows
    ]


def channel_member_ids(*, channel_id: str) -> list[int]:
    """Ids of a channel's members."""
    return list(
        ChannelMember.objects.filter(channel_id=channel_id)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def channel_ids_for(*, user_id: int) -> list[str]:
    """Ids of the channels a user belongs to."""
    return list(
        ChannelMember.objects.filter(user_id=user_id).values_list(
            "channel_id", flat=True
        )
    )


def message_list(
    *, channel_id: str, before: int | None = None, limit: int = 50
) -> list[ChannelMessage]:
    """A page of a channel's messages, newest first, before a message id."""
    rows = (
        ChannelMessage.objects.filter(channel_id=channel_id)
        .prefetch_related("reactions")
        .order_by("-id")
    )
    if before is not None:
        rows = rows.filter(id__lt=before)
    return list(rows[: max(1, min(limit, PAGE_MAX))])
