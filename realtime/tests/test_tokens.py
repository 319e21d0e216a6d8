"""Access-token lifetime on live sockets and the in-band `refresh` (realtime/tokens.py,
docs/protocol.md §3), through the consumer."""

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime import emit, tokens
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.hub import current_hub
from realtime.models import User
from testing.clients import RealSocket, SocketClient, SocketClosed

pytestmark = pytest.mark.django_db(transaction=True)

# Lifetime of the short tokens: exp is whole seconds, so one lapses 1-2 s after it
# was made.
SHORT = 2


def access_token(user, seconds: float) -> tuple[str, int]:
    """An access token of `user` that expires in `seconds`, and its exp."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token), int(token["exp"])


async def authenticate(client, token: str) -> dict:
    """Send the connect frame with `token`; the ack's data."""
    await client.send({"event": "connect", "data": {"token": token}, "ack": 0})
    frame = await client.recv()
    assert frame.get("ack") == 0 and "data" in frame, frame
    client.sid = frame["data"]["sid"]
    return frame["data"]


async def connect_with(ws, token: str):
    """An in-process socket authenticated with `token`: the client, the ack's data."""
    client = await ws()
    return client, await authenticate(client, token)


async def silent_until(client, moment: float) -> bool:
    """True if nothing arrives before the Unix time `moment`."""
    return await client.nothing(max(moment - time.time(), 0.0))


# The in-process transport cancels the application when a receive times out, which
# breaks the test's teardown: these wait with nothing() and fail with an assertion.
async def next_frame(client, timeout: float = 3.0) -> dict:
    """The next frame; fails if none arrives within `timeout`."""
    assert not await client.nothing(timeout), f"no frame within {timeout} s"
    return await client.recv()


async def next_event(client, name: str, timeout: float = 4.0):
    """The data of the next event `name`, skipping other frames."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await next_frame(client, max(deadline - time.monotonic(), 0.01))
        if frame.get("event") == name:
            return frame["data"]


async def close_code(client, timeout: float = 3.0) -> int | None:
    """The close code of the socket, which must close within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await next_frame(client, max(deadline - time.monotonic(), 0.01))
        except SocketClosed as closed:
            return closed.code


@pytest.fixture
async def alice_bob(make_user):
    make = database_sync_to_async(make_user)
    return await make("alice"), await make("bob")


async def test_connect_ack_carries_the_tokens_exp(ws, alice_bob):
    alice, _ = alice_bob
    token, exp = access_token(alice, 600)
    _, hello = await connect_with(ws, token)
    assert hello["exp"] == exp and isinstance(hello["exp"], int)


async def test_socket_is_closed_when_its_token_expires(ws, alice_bob):
    alice, _ = alice_bob
    token, exp = access_token(alice, SHORT)
    client, _ = await connect_with(ws, token)
    # Open until the token's exp, told why and closed right after it.
    assert await silent_until(client, exp - 0.3)
    assert await next_frame(client) == {
        "event": "disconnect",
        "data": {"reason": "token expired"},
    }
    assert time.time() >= exp
    assert await close_code(client) == CLOSE_UNAUTHORIZED
    assert await emit.online_user_ids() == []


async def test_refresh_keeps_the_socket_open_past_the_first_expiry(ws, alice_bob):
    alice, _ = alice_bob
    token, first_exp = access_token(alice, SHORT)
    client, _ = await connect_with(ws, token)
    fresh, fresh_exp = access_token(alice, 600)
    reply = await client.call("refresh", {"token": fresh})
    assert reply == {"ack": reply["ack"], "data": {"exp": fresh_exp}}
    assert await silent_until(client, first_exp + 0.7)
    assert "data" in await client.call("heartbeat")
    assert await emit.online_user_ids() == [alice.id]


async def test_another_users_token_is_forbidden_and_changes_nothing(ws, alice_bob):
    alice, bob = alice_bob
    token, exp = access_token(alice, SHORT)
    client, hello = await connect_with(ws, token)
    bobs, _ = access_token(bob, 600)
    reply = await client.call("refresh", {"token": bobs})
    assert reply["error"] == {
        "code": "forbidden",
        "message": "token is for another user",
    }
    # Still alice's socket, with the same sid, rooms and expiry.
    session = current_hub().sessions[hello["sid"]]
    assert session.user_id == alice.id and session.sid == client.sid
    assert (await client.call("user-join"))["data"]["id"] == alice.id
    assert session.rooms >= {f"user:{alice.id}"}
    assert f"user:{bob.id}" not in session.rooms
    # (user-join brings presence broadcasts: read past them.)
    assert await next_event(client, "disconnect") == {"reason": "token expired"}
    assert time.time() >= exp
    assert await close_code(client) == CLOSE_UNAUTHORIZED


def _expired(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


@pytest.mark.parametrize(
    "make_token",
    [
        lambda user: "abc.def.ghi",
        lambda user: "",
        _expired,
        lambda user: str(RefreshToken.for_user(user)),  # not an access token
    ],
    ids=["malformed", "empty", "expired", "refresh-token"],
)
async def test_invalid_token_is_refused_and_the_socket_stays(ws, alice_bob, make_token):
    alice, _ = alice_bob
    token, exp = access_token(alice, 600)
    client, _ = await connect_with(ws, token)
    reply = await client.call("refresh", {"token": make_token(alice)})
    assert reply["error"] == {
        "code": "unauthorized",
        "message": "token is invalid or expired",
    }
    assert "data" in await client.call("heartbeat")
    session = current_hub().sessions[client.sid]
    lifetime = tokens._lifetime(session)
    assert lifetime.exp == exp and not lifetime.timer.cancelled()


async def test_refresh_payload_is_validated(ws, alice_bob):
    alice, _ = alice_bob
    client, _ = await connect_with(ws, access_token(alice, 600)[0])
    reply = await client.call("refresh", {})
    assert reply["error"] == {
        "code": "bad_request",
        "message": "refresh: token: Field required",
    }
    for data in [{"token": 5}, {"token": "x", "user_id": alice.id}]:
        reply = await client.call("refresh", data)
        assert reply["error"]["code"] == "bad_request", data
    assert "data" in await client.call("heartbeat")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"is_active": False}, "user is inactive"),
        ({"password": "something-else"}, "token was revoked by a password change"),
    ],
)
async def test_inactive_or_revoked_token_gets_auths_message(
    ws, alice_bob, change, message
):
    alice, _ = alice_bob
    client, _ = await connect_with(ws, access_token(alice, 600)[0])
    fresh, _ = access_token(alice, 900)
    # A queryset update sends no signal, so the socket is not closed by it: what is
    # left to see is what refresh answers for such a token.
    await database_sync_to_async(User.objects.filter(pk=alice.id).update)(**change)
    reply = await client.call("refresh", {"token": fresh})
    assert reply["error"] == {"code": "unauthorized", "message": message}


async def test_an_older_token_does_not_shorten_the_socket(ws, alice_bob):
    alice, _ = alice_bob
    token, exp = access_token(alice, 600)
    client, _ = await connect_with(ws, token)
    older, _ = access_token(alice, 60)
    reply = await client.call("refresh", {"token": older})
    assert reply["data"] == {"exp": exp}


async def test_password_change_still_closes_a_refreshed_socket_at_once(ws, alice_bob):
    alice, _ = alice_bob
    client, _ = await connect_with(ws, access_token(alice, 600)[0])
    assert "data" in await client.call(
        "refresh", {"token": access_token(alice, 900)[0]}
    )

    def change_password():
        alice.set_password("a-new-password")
        alice.save()

    started = time.monotonic()
    await database_sync_to_async(change_password)()
    assert await next_event(client, "disconnect") == {"reason": "password changed"}
    assert await close_code(client) == CLOSE_UNAUTHORIZED
    assert time.monotonic() - started < 2


async def test_expiry_during_another_close_adds_no_second_reason(ws, alice_bob):
    alice, _ = alice_bob
    token, exp = access_token(alice, SHORT)
    client, hello = await connect_with(ws, token)
    hub = current_hub()
    # What Hub.close_session does first, before the close itself (a revocation
    # whose `disconnect` event already went out).
    await hub.unregister(hub.sessions[hello["sid"]])
    assert await silent_until(client, exp + 0.7)


async def test_disconnect_cancels_the_expiry_timer(ws, alice_bob):
    alice, _ = alice_bob
    client, hello = await connect_with(ws, access_token(alice, 600)[0])
    hub = current_hub()
    session = hub.sessions[hello["sid"]]
    timer = tokens._lifetime(session).timer
    assert timer is not None and not timer.cancelled()
    await client.close()
    for _ in range(100):
        if hello["sid"] not in hub.sessions:
            break
        await asyncio.sleep(0.02)
    assert timer.cancelled()
    assert session not in tokens._lifetime.made


@pytest.mark.cluster
async def test_expiry_and_refresh_over_real_sockets_on_both_servers(cluster, alice_bob):
    # daphne and uvicorn: each closes the socket that did not refresh with 4401
    # (daphne refuses codes below 3000) and keeps the one that did.
    alice, bob = alice_bob
    kept, lapsing, clients = [], [], []
    try:
        for server in cluster:
            keeper = await SocketClient.open(RealSocket(server.ws))
            clients.append(keeper)
            await authenticate(keeper, access_token(alice, SHORT)[0])
            reply = await keeper.call("refresh", {"token": access_token(alice, 600)[0]})
            assert "data" in reply, reply
            kept.append(keeper)
            lapser = await SocketClient.open(RealSocket(server.ws))
            clients.append(lapser)
            exp = (await authenticate(lapser, access_token(bob, SHORT)[0]))["exp"]
            lapsing.append(lapser)
        for lapser in lapsing:
            assert await lapser.event("disconnect") == {"reason": "token expired"}
            assert await lapser.closed_code() == CLOSE_UNAUTHORIZED
        assert time.time() >= exp
        for keeper in kept:
            assert "data" in await keeper.call("heartbeat")
    finally:
        for client in clients:
            await client.close()
