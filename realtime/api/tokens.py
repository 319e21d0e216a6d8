"""Token refresh that honours revocation.

simplejwt's refresh checks only that the user is active: a refresh token issued before
a password change still yields access tokens (which connect then refuses), and a
deleted user's refresh token raises an unhandled DoesNotExist (HTTP 500). Here both are
401 in the one error shape.
"""

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.exceptions import (
    AuthenticationFailed,
    InvalidToken,
    TokenError,
)
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password
from rest_framework_simplejwt.views import TokenRefreshView


class RevocableTokenRefreshSerializer(TokenRefreshSerializer):
    """Refuse refresh tokens of missing or inactive users and of changed passwords."""

    def validate(self, attrs):
        try:
            refresh = RefreshToken(attrs["refresh"])
        except TokenError:
            raise InvalidToken("token is invalid or expired") from None
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = (
            get_user_model()
            .objects.filter(**{api_settings.USER_ID_FIELD: user_id})
            .first()
        )
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(
                "no active account for this token", "no_active_account"
            )
        if api_settings.CHECK_REVOKE_TOKEN and refresh.payload.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                "token was revoked by a password change", "password_changed"
            )
        return super().validate(attrs)


class TokenRefreshApi(TokenRefreshView):
    """POST /api/auth/token/refresh/: a new access token for a valid refresh token."""

    serializer_class = RevocableTokenRefreshSerializer
