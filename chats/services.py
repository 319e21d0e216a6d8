"""Writes to chats and messages, grants and read marks; the emitter, REST views,
socket events and tasks all call these.

Streaming writes are single UPDATE statements on one message row: text is appended in
SQL (no read-modify-write of the content, never of the whole chat).
"""

from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from chats.models import DEFAULT_TITLE, Chat, ChatGrant, ChatRead, Message
from chats.presence import presence_event
from chats.rooms import chat_room
from chats.selectors import users_public
from realtime import emit
from realtime.dialects import OPENWEBUI
from realtime.errors import NOT_FOUND, EventError
from realtime.history import Position
from realtime.rooms import user_room

# The `events` type that carries a stored prompt to every session of its user: Open
# WebUI's front end sets a message's content from it (its chat:message flow).
PROMPT_EVENT = "chat:message"


def chat_create(
    *, owner, title: str = DEFAULT_TITLE, chat_id: str | None = None
) -> Chat:
    """Create a chat for its owner."""
    fields = {"owner": owner, "title": title or DEFAULT_TITLE}
    if chat_id:
        fields["id"] = chat_id
    return Chat.objects.create(**fields)


def chat_get_for(*, user_id: int, chat_id: str) -> Chat:
    """The user's chat; not_found for a missing chat or someone else's."""
    chat = Chat.objects.filter(id=chat_id, owner_id=user_id).first()
    if chat is None:
        raise EventError(NOT_FOUND, "no such chat")
    return chat


class MessageIdTaken(Exception):
    """The chat already has a message with the id asked for."""


def chat_prompt_add(
    *,
    user_id: int,
    chat_id: str,
    prompt: str,
    model: str,
    answer_id: str | None = None,
) -> tuple[Message, Message]:
    """Store a prompt and the empty answer that will stream into it.

    The prompt goes under the chat's last message (the previous answer; nothing for
    the first prompt), so the chat is one thread. The chat row is locked meanwhile,
    so two prompts at once still chain one after the other."""
    with transaction.atomic():
        chat = (
            Chat.objects.select_for_update()
            .filter(id=chat_id, owner_id=user_id)
            .first()
        )
        if chat is None:
            raise EventError(NOT_FOUND, "no such chat")
        if answer_id and chat.messages.filter(message_id=answer_id).exists():
            raise MessageIdTaken(answer_id)
        last = chat.messages.order_by("-created_at", "-id").first()
        question = Message.objects.create(
            chat=chat,
            role=Message.Role.USER,
            content=prompt,
            done=True,
            state=Message.State.DONE,
            parent_id=last.message_id if last else None,
        )
        fields = {"message_id": answer_id} if answer_id else {}
        answer = Message.objects.create(
            chat=chat,
            role=Message.Role.ASSISTANT,
            parent_id=question.message_id,
            model=model,
            **fields,
        )
        prompt_event = {
            "chat_id": chat.id,
            "message_id": question.message_id,
            "data": {"type": PROMPT_EVENT, "data": message_summary(question)},
        }
        # Every tab of the user shows the prompt, not only the one that sent it.
        transaction.on_commit(
            lambda: emit.user_emit_sync(
                user_id=user_id, event="events", data=prompt_event
            )
        )
    return question, answer


def message_summary(message: Message) -> dict:
    """A message as REST and the prompt event give it (docs/protocol.md §9)."""
    return {
        "message_id": message.message_id,
        "parent_id": message.parent_id,
        "role": message.role,
        "model": message.model,
        "content": message.content,
        "status_history": message.status_history,
        "embeds": message.embeds,
        "files": message.files,
        "sources": message.sources,
        "done": message.done,
        "state": message.state,
        "stop_reason": message.stop_reason or None,
        "position": message_position_of(message),
        "created_at": _iso(message.created_at),
        "updated_at": _iso(message.updated_at),
    }


def message_position_of(message: Message) -> dict | None:
    """Where the stored content is in the owner's user room (docs/protocol.md §8):
    {"room", "epoch", "offset"}, or None."""
    if message.position_offset is None:
        return None
    return {
        "room": user_room(message.chat.owner_id),
        "epoch": message.position_epoch,
        "offset": message.position_offset,
    }


def _iso(at: datetime) -> str:
    # As DRF writes the chat rows' times: ISO 8601 in UTC with a "Z".
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_ensure(
    *,
    user_id: int,
    chat_id: str,
    message_id: str,
    role: str = "assistant",
    position: Position | None = None,
    **fields,
) -> Message:
    """The message row of a chat the user owns, created on first use; `position`:
    where its stored content is in the user room, if it has none yet."""
    chat = chat_get_for(user_id=user_id, chat_id=chat_id)
    if position is not None:
        # In the INSERT itself: a reader never sees a new row without its position.
        fields = {
            "position_epoch": position.epoch,
            "position_offset": position.offset,
            **fields,
        }
    message, _ = Message.objects.get_or_create(
        chat=chat, message_id=message_id, defaults={"role": role, **fields}
    )
    if position is not None and message.position_offset is None:
        Message.objects.filter(pk=message.pk, position_offset__isnull=True).update(
            position_epoch=position.epoch, position_offset=position.offset
        )
    return message


def message_append(
    *, chat_id: str, message_id: str, delta: str, position: Position | None = None
) -> int:
    """Append streamed text in one UPDATE (and move the stored position to that of
    the last event the text includes); returns rows changed."""
    fields = {}
    if position is not None:
        fields = {"position_epoch": position.epoch, "position_offset": position.offset}
    return Message.objects.filter(chat_id=chat_id, message_id=message_id).update(
        content=Concat(F("content"), Value(delta)), updated_at=timezone.now(), **fields
    )


def message_append_many(*, rows: list[tuple[str, str, str, Position | None]]) -> int:
    """Append streamed text to many messages: rows of (chat_id, message_id, delta,
    position or None), one UPDATE each, sent as one executemany in one transaction."""
    if not rows:
        return 0
    table = connection.ops.quote_name(Message._meta.db_table)
    # `||` concatenates text on PostgreSQL and SQLite, the two supported databases.
    sql = (
        f"UPDATE {table} SET content = content || %s, updated_at = %s,"
        " position_epoch = COALESCE(%s, position_epoch),"
        " position_offset = COALESCE(%s, position_offset)"
        " WHERE chat_id = %s AND message_id = %s"
    )
    now = timezone.now()
    params = [
        (delta, now, *(position[1:] if position else (None, None)), chat, mid)
        for chat, mid, delta, position in rows
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(rows)


def message_place(*, chat_id: str, message_id: str, position: Position) -> int:
    """Record that the stored message includes the event at `position` (one that
    was stored before it was sent: a status, a replace, the completion)."""
    return Message.objects.filter(chat_id=chat_id, message_id=message_id).update(
        position_epoch=position.epoch, position_offset=position.offset
    )


def message_replace(*, chat_id: str, message_id: str, content: str) -> int:
    """Replace the content."""
    return Message.objects.filter(chat_id=chat_id, message_id=message_id).update(
        content=content, updated_at=timezone.now()
    )


def message_extend(*, chat_id: str, message_id: str, field: str, items: list) -> int:
    """Add items to one of the list fields (status_history, embeds, files, sources)."""
    assert field in {"status_history", "embeds", "files", "sources"}, field
    with transaction.atomic():
        row = (
            Message.objects.select_for_update()
            .filter(chat_id=chat_id, message_id=message_id)
            .values_list(field, flat=True)
            .first()
        )
        if row is None:
            return 0
        return Message.objects.filter(chat_id=chat_id, message_id=message_id).update(
            **{field: [*row, *items], "updated_at": timezone.now()}
        )


def message_complete(
    *, chat_id: str, message_id: str, content: str | None, done: bool
) -> int:
    """Store the final content (when given); done: the message completed."""
    fields: dict[str, Any] = {"updated_at": timezone.now()}
    if content is not None:
        fields["content"] = content
    if done:
        fields.update(done=True, state=Message.State.DONE, stop_reason="")
    return Message.objects.filter(chat_id=chat_id, message_id=message_id).update(
        **fields
    )


def message_finish(*, chat_id: str, message_id: str, state: str, reason: str) -> int:
    """End a message that did not complete: STOPPED or FAILED, and why. Only a
    message still streaming changes, so a late stop never undoes a completion."""
    assert state in (Message.State.STOPPED, Message.State.FAILED), state
    return Message.objects.filter(
        chat_id=chat_id, message_id=message_id, state=Message.State.STREAMING
    ).update(state=state, stop_reason=reason, updated_at=timezone.now())


def chat_set_title(*, chat_id: str, title: str) -> int:
    """Rename a chat."""
    return Chat.objects.filter(id=chat_id).update(
        title=str(title)[:255], updated_at=timezone.now()
    )


def chat_title_from_answer(*, chat_id: str, title: str) -> int:
    """Name a chat after an answer, only if its title is still the default one: a
    title the user gave is kept (Open WebUI's clients create chats as "New Chat")."""
    return Chat.objects.filter(id=chat_id, title=DEFAULT_TITLE).update(
        title=str(title)[:255], updated_at=timezone.now()
    )


def chat_set_tags(*, chat_id: str, tags: list) -> int:
    """Replace a chat's tags."""
    return Chat.objects.filter(id=chat_id).update(tags=tags, updated_at=timezone.now())


# The event a user's sessions get when their access to a chat changed.
ACCESS_EVENT = "chat:access"


def chat_grant(*, chat: Chat, user_id: int, permission: str | None) -> None:
    """Share a chat with another user (read or write), or revoke (permission None).

    A session's access is checked when it joins the chat's room, so after any change
    the user's sessions leave the room, on every instance, and must join again; the
    others get the presence without them."""
    if permission is None:
        ChatGrant.objects.filter(chat=chat, user_id=user_id).delete()
    else:
        ChatGrant.objects.update_or_create(
            chat=chat, user_id=user_id, defaults={"permission": permission}
        )
    chat_id = chat.id
    transaction.on_commit(lambda: _access_changed(chat_id, user_id, permission))


def _access_changed(chat_id: str, user_id: int, permission: str | None) -> None:
    room = chat_room(chat_id)
    present = emit.room_user_ids_sync(room=room)
    emit.room_leave_for_users_sync(room=room, user_ids=[user_id])
    if user_id in present:
        users = users_public(user_ids=[u for u in present if u != user_id])
        emit.room_emit_sync(
            room=room,
            event="events",
            data=presence_event(chat_id=chat_id, users=users),
            skip_user_id=user_id,
        )
    # Open WebUI's client has no such event: its next events:chat is refused, and
    # the refusal makes its page reload the chat and join again.
    emit.user_emit_sync(
        user_id=user_id,
        event=ACCESS_EVENT,
        data={"chat_id": chat_id, "permission": permission},
        variants={OPENWEBUI: None},
    )


def chat_mark_read(*, chat: Chat, user_id: int) -> datetime:
    """Record that the user read the chat now; returns when."""
    at = timezone.now()
    ChatRead.objects.update_or_create(
        chat=chat, user_id=user_id, defaults={"last_read_at": at}
    )
    return at
