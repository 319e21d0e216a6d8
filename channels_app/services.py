"""Writes for channels; REST views and socket handlers call these.

Every change that clients hear of is broadcast after its transaction commits, so no
client hears of a row that was rolled back.
"""

from django.db import transaction
from django.utils import timezone

from channels_app import envelopes
from channels_app.envelopes import (  # noqa: F401 (the API's representations)
    channel_openwebui,
    channel_summary,
    message_openwebui,
    message_summary,
)
from channels_app.models import (
    MAX_REACTION_NAME,
    Channel,
    ChannelMember,
    ChannelMessage,
    ChannelMessageReaction,
)
from channels_app.rooms import channel_room
from realtime import emit
from realtime.dialects import epoch_ns
from realtime.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, EventError

MAX_MESSAGE_CHARS = 20_000


def membership_get(*, channel_id: str, user_id: int) -> ChannelMember:
    """The user's membership; not_found if the channel is missing or not theirs."""
    member = (
        ChannelMember.objects.select_related("channel", "user")
        .filter(channel_id=channel_id, user_id=user_id)
        .first()
    )
    if member is None:
        raise EventError(NOT_FOUND, "no such channel")
    return member


def channel_create(*, owner, name: str, kind: str, member_ids: list[int]) -> Channel:
    """Create a channel; the creator becomes its owner. A direct channel with the same
    other user is returned instead of making a second one."""
    from realtime.models import User

    others = set(member_ids) - {owner.id}
    found = set(
        User.objects.filter(id__in=others, is_active=True).values_list("id", flat=True)
    )
    if found != others:
        raise EventError(NOT_FOUND, "no such user")
    if kind == Channel.Kind.DIRECT:
        if len(others) != 1:
            raise EventError(
                BAD_REQUEST, "a direct channel has exactly one other member"
            )
        (other,) = others
        existing = (
            Channel.objects.filter(kind=Channel.Kind.DIRECT, members__user_id=owner.id)
            .filter(members__user_id=other)
            .first()
        )
        if existing is not None:
            return existing
    with transaction.atomic():
        channel = Channel.objects.create(name=name, kind=kind, owner=owner)
        ChannelMember.objects.create(
            channel=channel, user=owner, role=ChannelMember.Role.OWNER
        )
        ChannelMember.objects.bulk_create(
            ChannelMember(channel=channel, user_id=uid) for uid in sorted(others)
        )
        user_ids = [owner.id, *sorted(others)]
        transaction.on_commit(lambda: _announce_created(channel, user_ids, owner))
    return channel


def _announce_created(channel: Channel, user_ids: list[int], actor) -> None:
    emit.room_enter_for_users_sync(room=channel_room(channel.id), user_ids=user_ids)
    for uid in user_ids:
        envelopes.user_event_sync(
            user_id=uid,
            event="channel:created",
            data=channel_summary(channel),
            openwebui_data=channel_openwebui(channel),
            channel=channel,
            actor=actor,
        )


def channel_member_add_check(*, actor_id: int, channel_id: str) -> ChannelMember:
    """The actor's membership if they may add members: not_found for non-members,
    forbidden for plain members, bad_request for a direct channel. REST checks this
    before the body, so a bad body tells nothing about someone else's channel."""
    actor = membership_get(channel_id=channel_id, user_id=actor_id)
    if not actor.can_manage:
        raise EventError(FORBIDDEN, "only the channel's owner or admins add members")
    if actor.channel.kind == Channel.Kind.DIRECT:
        raise EventError(BAD_REQUEST, "direct channels have fixed members")
    return actor


def channel_member_add(
    *, actor_id: int, channel_id: str, user_id: int
) -> ChannelMember:
    """Add a member (owners and admins); their live sessions enter the room at once."""
    from realtime.models import User

    actor = channel_member_add_check(actor_id=actor_id, channel_id=channel_id)
    if not User.objects.filter(id=user_id, is_active=True).exists():
        raise EventError(NOT_FOUND, "no such user")
    with transaction.atomic():
        member, created = ChannelMember.objects.get_or_create(
            channel_id=channel_id, user_id=user_id
        )
        if created:
            transaction.on_commit(
                lambda: _announce_created(actor.channel, [user_id], actor.user)
            )
    return member


def channel_member_remove(*, actor_id: int, channel_id: str, user_id: int) -> None:
    """Remove a member (owners and admins, or a member leaving); their sessions leave
    the room at once and hear nothing more from it."""
    actor = membership_get(channel_id=channel_id, user_id=actor_id)
    if actor_id != user_id and not actor.can_manage:
        raise EventError(FORBIDDEN, "only the channel's owner or admins remove members")
    target = ChannelMember.objects.filter(
        channel_id=channel_id, user_id=user_id
    ).first()
    if target is None:
        raise EventError(NOT_FOUND, "no such member")
    if target.role == ChannelMember.Role.OWNER:
        raise EventError(BAD_REQUEST, "the owner cannot be removed")
    with transaction.atomic():
        target.delete()
        transaction.on_commit(
            lambda: emit.room_leave_for_users_sync(
                room=channel_room(channel_id), user_ids=[user_id]
            )
        )


def message_post(
    *,
    author,
    channel_id: str,
    content: str,
    parent_id: int | None = None,
    temp_id: str | None = None,
) -> ChannelMessage:
    """Post a message as a member; the room hears of it after commit (Open WebUI
    sockets with the poster's `temp_id`), and of the thread's root when it is a
    reply (`message:reply`)."""
    member = membership_get(channel_id=channel_id, user_id=author.id)
    _check_content(content)
    parent = None
    if parent_id is not None:
        parent = ChannelMessage.objects.filter(
            id=parent_id, channel_id=channel_id, deleted_at__isnull=True
        ).first()
        if parent is None:
            raise EventError(NOT_FOUND, "no such parent message")
    with transaction.atomic():
        message = ChannelMessage.objects.create(
            channel_id=channel_id, author=author, content=content, parent=parent
        )
        ChannelMember.objects.filter(channel_id=channel_id, user=author).update(
            last_read_at=message.created_at
        )
        Channel.objects.filter(id=channel_id).update(updated_at=message.created_at)
        envelopes.broadcast_on_commit(
            kind="message",
            channel=member.channel,
            user=author,
            message_id=message.id,
            data=message_summary(message),
            openwebui_data=message_openwebui(message, temp_id=temp_id),
        )
        if parent is not None:
            _reply_on_commit(parent, member.channel, author)
    return message


def _reply_on_commit(parent: ChannelMessage, channel: Channel, actor) -> None:
    """`message:reply`: the thread's root with its reply count, after a reply was
    posted or deleted."""
    replies = parent.replies.filter(deleted_at__isnull=True)
    count = replies.count()
    latest = replies.order_by("-id").values_list("created_at", flat=True).first()
    envelopes.broadcast_on_commit(
        kind="message:reply",
        channel=channel,
        user=actor,
        message_id=parent.id,
        data={
            **message_summary(parent),
            "reply_count": count,
            "latest_reply_at": latest.isoformat() if latest else None,
        },
        openwebui_data=message_openwebui(
            parent, reply_count=count, latest_reply_at=epoch_ns(latest)
        ),
    )


def message_edit_check(*, actor, channel_id: str, message_id: int) -> ChannelMessage:
    """The message if the actor may edit it: not_found for non-members and missing
    messages, forbidden for someone else's. REST checks this before the body."""
    message = message_get(actor=actor, channel_id=channel_id, message_id=message_id)
    if message.author_id != actor.id:
        raise EventError(FORBIDDEN, "only the author edits a message")
    return message


def message_edit(
    *, actor, channel_id: str, message_id: int, content: str
) -> ChannelMessage:
    """Edit one's own message."""
    message = message_edit_check(
        actor=actor, channel_id=channel_id, message_id=message_id
    )
    _check_content(content)
    with transaction.atomic():
        message.content = content
        message.edited_at = timezone.now()
        message.save(update_fields=["content", "edited_at", "updated_at"])
        _message_event_on_commit(message, "message:update", actor)
    return message


def message_delete(*, actor, channel_id: str, message_id: int) -> None:
    """Delete a message (its author, or the channel's owner or admins); a deleted
    reply also sends its thread's root with the new reply count."""
    message = message_get(actor=actor, channel_id=channel_id, message_id=message_id)
    if message.author_id != actor.id:
        member = membership_get(channel_id=channel_id, user_id=actor.id)
        if not member.can_manage:
            raise EventError(FORBIDDEN, "only the author or a channel admin deletes")
    with transaction.atomic():
        message.deleted_at = timezone.now()
        message.content = ""
        message.save(update_fields=["content", "deleted_at", "updated_at"])
        _message_event_on_commit(message, "message:delete", actor)
        if message.parent is not None:
            _reply_on_commit(message.parent, message.channel, actor)


def reaction_add(
    *, actor, channel_id: str, message_id: int, name: str
) -> tuple[ChannelMessage, bool]:
    """React to a message of the channel (members); True if the reaction is new. The
    room hears `message:reaction:add` only for a new one."""
    message = message_get(actor=actor, channel_id=channel_id, message_id=message_id)
    _check_reaction_name(name)
    with transaction.atomic():
        _, created = ChannelMessageReaction.objects.get_or_create(
            message=message, user=actor, name=name
        )
        if created:
            _message_event_on_commit(message, "message:reaction:add", actor, name=name)
    return message, created


def reaction_remove(
    *, actor, channel_id: str, message_id: int, name: str
) -> ChannelMessage:
    """Take back one's own reaction; not_found if there is none of that name."""
    message = message_get(actor=actor, channel_id=channel_id, message_id=message_id)
    _check_reaction_name(name)
    with transaction.atomic():
        deleted, _ = ChannelMessageReaction.objects.filter(
            message=message, user=actor, name=name
        ).delete()
        if not deleted:
            raise EventError(NOT_FOUND, "no such reaction")
        _message_event_on_commit(message, "message:reaction:remove", actor, name=name)
    return message


def channel_mute_set(*, user_id: int, channel_id: str, muted: bool) -> ChannelMember:
    """Mute or unmute a channel for one member; their sessions hear `channel:mute`
    when it changes. Muting changes no counting: see docs/protocol.md."""
    member = membership_get(channel_id=channel_id, user_id=user_id)
    if member.is_muted == muted:
        return member
    with transaction.atomic():
        member.is_muted = muted
        member.save(update_fields=["is_muted"])
        channel, user = member.channel, member.user
        transaction.on_commit(
            lambda: envelopes.user_event_sync(
                user_id=user_id,
                event="channel:mute",
                data={"channel_id": channel_id, "is_channel_muted": muted},
                openwebui_data={"is_channel_muted": muted},
                channel=channel,
                actor=user,
            )
        )
    return member


def channel_mark_read(*, user_id: int, channel_id: str):
    """Set the user's own read position to now; returns it."""
    membership_get(channel_id=channel_id, user_id=user_id)
    now = timezone.now()
    ChannelMember.objects.filter(channel_id=channel_id, user_id=user_id).update(
        last_read_at=now
    )
    return now


def message_get(*, actor, channel_id: str, message_id: int) -> ChannelMessage:
    """A message of the channel that the actor (a member) sees; not_found otherwise.
    Scoped to the channel: another channel's message is not_found here, even to a
    member of both. REST checks this before the body."""
    membership_get(channel_id=channel_id, user_id=actor.id)
    message = (
        ChannelMessage.objects.select_related("channel", "author", "parent")
        .filter(id=message_id, channel_id=channel_id, deleted_at__isnull=True)
        .first()
    )
    if message is None:
        raise EventError(NOT_FOUND, "no such message")
    return message


def _check_content(content: str) -> None:
    if not isinstance(content, str) or not content.strip():
        raise EventError(BAD_REQUEST, "content must be a non-empty string")
    if len(content) > MAX_MESSAGE_CHARS:
        raise EventError(BAD_REQUEST, f"content is longer than {MAX_MESSAGE_CHARS}")


def _check_reaction_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise EventError(BAD_REQUEST, "name must be a non-empty string")
    if len(name) > MAX_REACTION_NAME:
        raise EventError(BAD_REQUEST, f"name is longer than {MAX_REACTION_NAME}")


def _message_event_on_commit(
    message: ChannelMessage, kind: str, actor, **extra
) -> None:
    # Read after the write, inside the transaction: the event carries the message
    # as it is once committed (its reactions included).
    message = (
        ChannelMessage.objects.select_related("channel", "author")
        .prefetch_related("reactions")
        .get(id=message.id)
    )
    envelopes.broadcast_on_commit(
        kind=kind,
        channel=message.channel,
        user=actor,
        message_id=message.id,
        data={**message_summary(message), **extra},
        openwebui_data=message_openwebui(message, **extra),
    )
