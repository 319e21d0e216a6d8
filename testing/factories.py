"""Users, tokens, API clients, chats and notes for tests, made the way the app makes
them (notes through the services)."""

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from chats import services as chat_services
from chats.models import Chat
from notes import services as note_services


def user_create(username: str, **fields):
    """A user whose password is "<username>-pass" and whose name is the username
    titled, unless `fields` say otherwise (role="admin", is_active=False, ...)."""
    fields.setdefault("name", username.title())
    user = get_user_model()(username=username, **fields)
    user.password = _password_hash(f"{username}-pass")
    user.save()
    return user


# Hashes made once per password and hasher: Django's PBKDF2 (a million rounds) costs
# half a second per user on a CI machine, which the suite paid hundreds of times. A
# hash made by the configured hasher is reused as it is, salt and all, so servers
# verify it without upgrading it (an upgrade changes the hash, which revokes the
# user's tokens as a password change would).
_hashes: dict[tuple[str, str], str] = {}


def _password_hash(raw: str) -> str:
    key = (raw, settings.PASSWORD_HASHERS[0])
    if key not in _hashes:
        _hashes[key] = make_password(raw)
    return _hashes[key]


async def users_create(*usernames: str) -> list:
    """One user per username, as user_create makes them (from async code)."""
    make = database_sync_to_async(user_create)
    return [await make(username) for username in usernames]


def token_for(user) -> str:
    """A valid access token for a user."""
    return str(AccessToken.for_user(user))


def api_for(user) -> APIClient:
    """A DRF test client authenticated as the user with a bearer token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


async def chat_create(owner, **fields) -> Chat:
    """A chat of `owner` (title: the model's default unless given)."""
    return await database_sync_to_async(Chat.objects.create)(owner=owner, **fields)


async def note_shared(owner, writers, content: str = "") -> str:
    """A note of `owner` that each of `writers` may write; its id."""

    def create():
        note = note_services.note_create(owner=owner, title="Shared", content=content)
        for user in writers:
            note_services.note_grant(note=note, user_id=user.id, permission="write")
        return note.id

    return await database_sync_to_async(create)()


async def chat_shared(owner, *, readers=(), writers=(), **fields) -> Chat:
    """A chat of `owner` shared read-only with `readers` and writable with `writers`
    (through the service, as the share endpoint does)."""

    def create():
        chat = Chat.objects.create(owner=owner, **fields)
        for users, permission in ((readers, "read"), (writers, "write")):
            for user in users:
                chat_services.chat_grant(
                    chat=chat, user_id=user.id, permission=permission
                )
        return chat

    return await database_sync_to_async(create)()
