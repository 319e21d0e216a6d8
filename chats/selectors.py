"""Who may read or write a chat, and what others see of the people in it."""

from django.contrib.auth import get_user_model

from chats.models import Chat, ChatGrant
from realtime.errors import FORBIDDEN, NOT_FOUND, EventError

READ, WRITE = "read", "write"


def chat_access(*, chat: Chat, user_id: int) -> str | None:
    """The user's access to a chat: "write" for its owner, a grant's permission, or
    None. Admins get nothing more: a chat is private to whom it is shared with."""
    if chat.owner_id == user_id:
        return WRITE
    grant = ChatGrant.objects.filter(chat=chat, user_id=user_id)
    return grant.values_list("permission", flat=True).first()


def chat_get_shared_for(*, chat_id: str, user_id: int, need: str = READ) -> Chat:
    """A chat the user may read (or write); not_found if they may not even read it,
    so a chat's existence is not told to those it is not shared with."""
    chat = Chat.objects.filter(id=chat_id).first()
    access = chat_access(chat=chat, user_id=user_id) if chat is not None else None
    if access is None:
        raise EventError(NOT_FOUND, "no such chat")
    if need == WRITE and access != WRITE:
        raise EventError(FORBIDDEN, "read-only access to this chat")
    return chat


def chat_grants(*, chat: Chat) -> dict[str, str]:
    """The chat's grants: user id (as a string, a JSON key) -> permission."""
    rows = ChatGrant.objects.filter(chat=chat).values_list("user_id", "permission")
    return {str(user_id): permission for user_id, permission in rows}


def users_public(*, user_ids: list[int]) -> list[dict]:
    """{id, name} of each user, sorted by id: what others see in presence."""
    users = get_user_model().objects.filter(id__in=user_ids).order_by("id")
    return [{"id": u.id, "name": u.display_name} for u in users]


def user_exists(*, user_id: int) -> bool:
    """Whether a user of that id exists (one a chat can be shared with)."""
    return get_user_model().objects.filter(id=user_id).exists()
