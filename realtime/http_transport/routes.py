"""The key of an HTTP session: the secret its POSTs must show, and where its stream
is, signed so that any instance can forward a POST without a lookup and no client
can point one at a channel of its choosing.

    key = SECRET "." MAC "." CHANNEL      (MAC = HMAC(SECRET_KEY, sid, CHANNEL))

The secret is checked by the instance holding the stream (it alone knows it), the
MAC by the instance the POST lands on.
"""

import base64
import hashlib
import hmac

from django.conf import settings

_SALT = b"realtime.http_transport.route"
# 128 bits of the MAC are kept: enough against forgery, and the key stays short.
_MAC_BYTES = 16


def _mac(sid: str, channel: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode() + _SALT,
        f"{sid}\n{channel}".encode(),
        hashlib.sha256,
    ).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def route_key(*, sid: str, secret: str, channel: str) -> str:
    """The key handed to the client in the stream's `open` event."""
    return f"{secret}.{_mac(sid, channel)}.{channel}"


def route_of(*, sid: str, key: str) -> tuple[str, str] | None:
    """(secret, channel) of a key made for `sid`; None if it was not."""
    parts = key.split(".", 2)
    if len(parts) != 3 or not all(parts):
        return None
    secret, mac, channel = parts
    if not hmac.compare_digest(mac, _mac(sid, channel)):
        return None
    return secret, channel
