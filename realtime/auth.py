"""The single authentication step of a socket: a simplejwt access token to a user
(at connect, and again at each in-band `refresh`, realtime.tokens)."""

from typing import Any, NamedTuple

from channels.db import database_sync_to_async
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import (
    AuthenticationFailed,
    InvalidToken,
    TokenError,
)

from realtime.errors import UNAUTHORIZED, EventError

# Stable, client-safe messages for simplejwt's failure codes.
_MESSAGES = {
    "user_inactive": "user is inactive",
    "user_not_found": "user not found",
    "password_changed": "token was revoked by a password change",
}


class Access(NamedTuple):
    """What a valid access token grants: its user, until its `exp` (Unix seconds)."""

    user: Any
    exp: int


def _access_for_token(token: str) -> Access:
    auth = JWTAuthentication()
    try:
        validated = auth.get_validated_token(token)
        return Access(user=auth.get_user(validated), exp=int(validated["exp"]))
    except (InvalidToken, TokenError):
        raise EventError(UNAUTHORIZED, "token is invalid or expired") from None
    except AuthenticationFailed as exc:
        # simplejwt puts its own code inside the detail dict.
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        code = str(detail.get("code", ""))
        raise EventError(
            UNAUTHORIZED, _MESSAGES.get(code, "authentication failed")
        ) from None


async def access_for_token(token: str) -> Access:
    """The active user an access token belongs to and the token's expiry; raises
    unauthorized otherwise."""
    if not token or len(token) > 4096:
        raise EventError(UNAUTHORIZED, "token is invalid or expired")
    return await database_sync_to_async(_access_for_token)(token)


def user_summary(user) -> dict:
    """What other parts of the protocol say about a user: id, name, role."""
    return {"id": user.id, "name": user.display_name, "role": user.role}
