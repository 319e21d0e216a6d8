"""Access-token lifetime on live sockets (docs/protocol.md §3).

A socket is authorised until the `exp` of the access token it connected with, and a
`refresh` event with a newer token of the same user moves that moment, in-band. When
it passes (server clock) the socket is told `token expired` and closed with 4401.
Each socket has one timer (the event loop's call_later), set at connect, re-armed
when it finds a later exp and cancelled at disconnect; frames pay nothing for it.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from rest_framework_simplejwt.settings import api_settings

from realtime import auth
from realtime.errors import CLOSE_UNAUTHORIZED, FORBIDDEN, EventError
from realtime.events import Payload, on, on_disconnect
from realtime.hub import current_hub
from realtime.session import Session, per_session

# The `disconnect` reason sent before the close (docs/protocol.md §3).
EXPIRED_REASON = "token expired"


@dataclass(slots=True)
class _Lifetime:
    """Until when a socket is authorised, and the timer that ends it."""

    exp: int = 0
    timer: asyncio.TimerHandle | None = None


_lifetime = per_session(_Lifetime)


class RefreshPayload(Payload):
    """A new access token of the socket's own user."""

    token: str


def token_expiry_watch(session: Session, *, exp: int) -> None:
    """Close an authenticated socket when its token's `exp` passes (unless a
    `refresh` moves it first)."""
    lifetime = _lifetime(session)
    if lifetime.timer is not None:
        lifetime.timer.cancel()
    lifetime.exp = exp
    _schedule(session, lifetime)


@on("refresh", schema=RefreshPayload)
async def refresh(session: Session, payload: RefreshPayload) -> dict:
    """Check a new access token as `connect` does; the socket's expiry becomes the
    token's when that is later. Refused tokens leave the socket as it was."""
    access = await auth.access_for_token(payload.token)
    if access.user.id != session.user_id:
        raise EventError(FORBIDDEN, "token is for another user")
    lifetime = _lifetime(session)
    # The timer is left where it is: when it fires it finds the later exp and waits
    # again, so a socket that refreshes often keeps one timer and moves no heap entry.
    lifetime.exp = max(lifetime.exp, access.exp)
    return {"exp": lifetime.exp}


@on_disconnect
async def token_expiry_stop(session: Session) -> None:
    """Cancel the socket's expiry timer."""
    lifetime = _lifetime.made.pop(session, None)
    if lifetime is not None and lifetime.timer is not None:
        lifetime.timer.cancel()
        lifetime.timer = None


def _seconds_left(lifetime: _Lifetime) -> float:
    # simplejwt accepts a token until exp + LEEWAY: so does the socket.
    leeway = api_settings.LEEWAY or 0
    if isinstance(leeway, timedelta):
        leeway = leeway.total_seconds()
    return lifetime.exp + float(leeway) - time.time()


def _schedule(session: Session, lifetime: _Lifetime) -> None:
    delay = max(_seconds_left(lifetime), 0.0)
    lifetime.timer = asyncio.get_running_loop().call_later(delay, _expire, session)


def _expire(session: Session) -> None:
    lifetime = _lifetime.made.get(session)
    if lifetime is None or session.closed:
        return
    lifetime.timer = None
    if _seconds_left(lifetime) > 0:
        # A refresh moved exp (or the loop's monotonic clock ran ahead of the wall
        # clock exp is read on): wait for the rest.
        _schedule(session, lifetime)
        return
    hub = current_hub()
    if hub is None or hub.sessions.get(session.sid) is not session:
        # Shutting down, or another close (a revocation) is under way and has said
        # why: a second reason would only confuse the client.
        return
    hub.spawn(hub.close_session(session, CLOSE_UNAUTHORIZED, EXPIRED_REASON))
