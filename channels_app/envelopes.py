"""What clients hear of channels, in each dialect (realtime.dialects).

Realtime sockets get `events:channel {channel_id, message_id, data: {type, data},
user}` with this project's representations (ISO 8601 times, `author_id`), and
`channel:created` / `channel:mute` as events of their own. Open WebUI sockets get
every one of them inside Open WebUI's envelope `{channel_id, message_id, data: {type,
data}, user, channel, created_at}`, with messages in Open WebUI's shape (`user_id`,
`user`, times in epoch nanoseconds, as its own backend stores them).
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel, ChannelMessage
from channels_app.rooms import channel_room
from realtime import emit
from realtime.dialects import OPENWEBUI, Variants, epoch_ns

EVENT = "events:channel"


def user_brief(user) -> dict:
    """Who did something: id and display name, from the session or the request."""
    return {"id": user.id, "name": user.display_name}


def channel_summary(channel: Channel) -> dict:
    """What clients get about a channel."""
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "owner_id": channel.owner_id,
        "created_at": channel.created_at.isoformat(),
    }


def channel_openwebui(channel: Channel) -> dict:
    """A channel in an Open WebUI envelope: ours, with Open WebUI's `user_id`,
    `type` and nanosecond times beside it."""
    return {
        **channel_summary(channel),
        "user_id": channel.owner_id,
        "type": "dm" if channel.kind == Channel.Kind.DIRECT else "group",
        "created_at": epoch_ns(channel.created_at),
        "updated_at": epoch_ns(channel.updated_at),
    }


def reactions_summary(message: ChannelMessage) -> list[dict]:
    """A message's reactions grouped by name, in the order each name first came:
    `[{"name", "user_ids", "count"}]`. Uses prefetched reactions when there are."""
    groups: dict[str, list[int]] = {}
    for reaction in sorted(message.reactions.all(), key=lambda r: r.id):
        groups.setdefault(reaction.name, []).append(reaction.user_id)
    return [
        {"name": name, "user_ids": ids, "count": len(ids)}
        for name, ids in groups.items()
    ]


def message_summary(message: ChannelMessage) -> dict:
    """What clients get about a message (REST, and realtime events)."""
    return {
        "id": message.id,
        "channel_id": message.channel_id,
        "author_id": message.author_id,
        "content": message.content,
        "parent_id": message.parent_id,
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "deleted": message.deleted_at is not None,
        "reactions": reactions_summary(message),
    }


def message_openwebui(message: ChannelMessage, **extra: Any) -> dict:
    """A message as Open WebUI's front end reads it in events, plus `extra`
    (`temp_id`, `name`, `reply_count`, ...)."""
    return {
        "id": message.id,
        "user_id": message.author_id,
        "channel_id": message.channel_id,
        "parent_id": message.parent_id,
        "content": message.content,
        "data": None,
        "meta": None,
        "created_at": epoch_ns(message.created_at),
        "updated_at": epoch_ns(message.edited_at or message.created_at),
        "user": user_brief(message.author),
        "reactions": reactions_summary(message),
        **extra,
    }


def channel_frames(
    *,
    kind: str,
    channel: Channel,
    user,
    data: Any,
    openwebui_data: Any,
    message_id: int | None = None,
) -> tuple[dict, Variants]:
    """The realtime `events:channel` payload of an event and its Open WebUI variant."""
    plain = {
        "channel_id": channel.id,
        "message_id": message_id,
        "data": {"type": kind, "data": data},
        "user": user_brief(user),
    }
    envelope = {
        **plain,
        "data": {"type": kind, "data": openwebui_data},
        "channel": channel_openwebui(channel),
        "created_at": epoch_ns(timezone.now()),
    }
    return plain, {OPENWEBUI: (EVENT, envelope)}


def broadcast_on_commit(
    *,
    kind: str,
    channel: Channel,
    user,
    data: Any,
    openwebui_data: Any,
    message_id: int | None = None,
) -> None:
    """Send an event to the channel's room once the transaction commits."""
    plain, variants = channel_frames(
        kind=kind,
        channel=channel,
        user=user,
        data=data,
        openwebui_data=openwebui_data,
        message_id=message_id,
    )
    room = channel_room(channel.id)
    transaction.on_commit(
        lambda: emit.room_emit_sync(
            room=room, event=EVENT, data=plain, variants=variants
        )
    )


def user_event_sync(
    *,
    user_id: int,
    event: str,
    data: dict,
    openwebui_data: dict,
    channel: Channel,
    actor,
) -> None:
    """Send one user's sessions a channel event of its own (realtime) that Open WebUI
    sockets get inside `events:channel` with `event` as its type (channel:created,
    channel:mute)."""
    _, variants = channel_frames(
        kind=event,
        channel=channel,
        user=actor,
        data=data,
        openwebui_data=openwebui_data,
    )
    emit.user_emit_sync(user_id=user_id, event=event, data=data, variants=variants)
