"""The wire protocol of /ws/ (docs/protocol.md), through Channels' communicator."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime import emit, events
from realtime.asgi import application
from realtime.errors import CLOSE_TOO_BIG, CLOSE_UNAUTHORIZED
from realtime.hub import current_hub
from realtime.models import User
from realtime.wire import dumps
from testing.clients import InProcess
from testing.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_connect_acks_sid_and_user(ws, make_user):
    alice = await database_sync_to_async(make_user)("alice", name="Alice", role="admin")
    client = await ws()
    await client.send(
        {"event": "connect", "data": {"token": token_for(alice)}, "ack": 0}
    )
    frame = await client.recv()
    assert frame["ack"] == 0
    assert frame["data"]["user"] == {"id": alice.id, "name": "Alice", "role": "admin"}
    assert isinstance(frame["data"]["sid"], str) and len(frame["data"]["sid"]) >= 16
    assert await emit.online_user_ids() == [alice.id]


async def _expect_unauthorized(client, frame) -> dict:
    await client.send(frame)
    reply = await client.recv()
    assert await client.closed_code() == CLOSE_UNAUTHORIZED
    return reply


async def test_missing_token_is_unauthorized(ws):
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {}, "ack": 0}
    )
    assert reply == {
        "ack": 0,
        "error": {
            "code": "unauthorized",
            "message": 'connect data must be {"token": string, "protocol"?: string}',
        },
    }


async def test_token_of_wrong_type_is_unauthorized(ws):
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": 5}, "ack": 0}
    )
    assert reply["error"]["code"] == "unauthorized"


async def test_invalid_token_is_unauthorized(ws):
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": "abc.def.ghi"}, "ack": 0}
    )
    assert reply["error"] == {
        "code": "unauthorized",
        "message": "token is invalid or expired",
    }


async def test_expired_token_is_unauthorized(ws, make_user):
    user = await database_sync_to_async(make_user)()
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": str(token)}, "ack": 0}
    )
    assert reply["error"]["message"] == "token is invalid or expired"


async def test_refresh_token_is_not_an_access_token(ws, make_user):
    user = await database_sync_to_async(make_user)()
    refresh = str(RefreshToken.for_user(user))
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": refresh}, "ack": 0}
    )
    assert reply["error"]["code"] == "unauthorized"


async def test_inactive_user_is_unauthorized(ws, make_user):
    user = await database_sync_to_async(make_user)(is_active=False)
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": token_for(user)}, "ack": 0}
    )
    assert reply["error"]["message"] == "user is inactive"


async def test_token_issued_before_password_change_is_unauthorized(ws, make_user):
    user = await database_sync_to_async(make_user)()
    token = token_for(user)

    def change_password():
        user.set_password("a-new-password")
        user.save()

    await database_sync_to_async(change_password)()
    reply = await _expect_unauthorized(
        await ws(), {"event": "connect", "data": {"token": token}, "ack": 0}
    )
    assert reply["error"]["message"] == "token was revoked by a password change"


async def test_first_frame_other_than_connect_is_unauthorized(ws):
    reply = await _expect_unauthorized(await ws(), {"event": "user-list", "ack": 5})
    assert reply["ack"] == 5 and reply["error"]["code"] == "unauthorized"


async def test_unauthenticated_socket_is_closed_after_auth_timeout(ws, settings):
    settings.AUTH_TIMEOUT = 0.2
    client = await ws()
    frame = await client.recv(timeout=2)
    assert frame == {
        "event": "error",
        "data": {"code": "unauthorized", "message": "authentication timeout"},
    }
    assert await client.closed_code() == CLOSE_UNAUTHORIZED


async def test_malformed_frame_before_auth_keeps_socket_open(ws, make_user):
    user = await database_sync_to_async(make_user)()
    client = await ws()
    await client.send_raw("{oops")
    assert (await client.recv())["data"]["code"] == "bad_request"
    await client.send(
        {"event": "connect", "data": {"token": token_for(user)}, "ack": 0}
    )
    assert (await client.recv())["data"]["user"]["id"] == user.id


async def test_second_connect_is_unknown_after_auth(ws, make_user):
    user = await database_sync_to_async(make_user)()
    client = await ws(user)
    reply = await client.call("connect", {"token": token_for(user)})
    assert reply["error"]["code"] == "unknown_event"


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            "{not json",
            {
                "event": "error",
                "data": {"code": "bad_request", "message": "frame is not valid JSON"},
            },
        ),
        (
            "[1]",
            {
                "event": "error",
                "data": {
                    "code": "bad_request",
                    "message": "frame must be a JSON object",
                },
            },
        ),
        (
            '{"event": 1, "ack": 9}',
            {
                "ack": 9,
                "error": {
                    "code": "bad_request",
                    "message": "event must be a non-empty string"
                    " of at most 128 characters",
                },
            },
        ),
        (
            '{"event": "user-list", "ack": "9"}',
            {
                "event": "error",
                "data": {
                    "code": "bad_request",
                    "message": "ack must be an integer from 0 to 2**53-1",
                },
            },
        ),
        (
            '{"event": "nope", "ack": 9}',
            {
                "ack": 9,
                "error": {"code": "unknown_event", "message": "unknown event 'nope'"},
            },
        ),
        (
            '{"event": "nope"}',
            {
                "event": "error",
                "data": {
                    "code": "unknown_event",
                    "message": "unknown event 'nope'",
                    "event": "nope",
                },
            },
        ),
        (
            '{"event": "user-list", "data": [], "ack": 9}',
            {
                "ack": 9,
                "error": {
                    "code": "bad_request",
                    "message": "user-list: data must be an object",
                },
            },
        ),
        (
            '{"event": "heartbeat", "data": {"x": 1}, "ack": 9}',
            {
                "ack": 9,
                "error": {
                    "code": "bad_request",
                    "message": "heartbeat: x: Extra inputs are not permitted",
                },
            },
        ),
        (
            '{"event": "user-join", "data": {"auth": "t"}, "ack": 9}',
            {
                "ack": 9,
                "error": {
                    "code": "bad_request",
                    "message": "user-join: auth: Input should be a valid dictionary",
                },
            },
        ),
        (
            '{"reply": 77, "data": 1}',
            {
                "event": "error",
                "data": {
                    "code": "bad_request",
                    "message": "no call is waiting for that reply",
                },
            },
        ),
    ],
)
async def test_bad_input_gets_error_and_socket_stays_usable(
    ws, make_user, raw, expected
):
    user = await database_sync_to_async(make_user)()
    client = await ws(user)
    await client.send_raw(raw)
    assert await client.recv() == expected
    # The connection is unharmed: the next emit is answered normally.
    assert (await client.call("user-list"))["data"] == {"user_ids": [user.id]}


async def test_binary_frame_is_bad_request(ws, make_user):
    client = await ws(await database_sync_to_async(make_user)())
    await client.send_raw(b"\x00\x01")
    assert (await client.recv())["data"]["code"] == "bad_request"
    assert "data" in await client.call("user-list")


async def test_frame_over_limit_closes_with_1009(ws, make_user, settings):
    settings.MAX_FRAME_BYTES = 1000
    client = await ws(await database_sync_to_async(make_user)())
    await client.send_raw(
        dumps({"event": "heartbeat", "data": {"x": "é" * 600}})
    )  # 1200+ bytes
    assert await client.closed_code() == CLOSE_TOO_BIG


async def test_frame_just_under_limit_is_processed(ws, make_user, settings):
    settings.MAX_FRAME_BYTES = 1000
    client = await ws(await database_sync_to_async(make_user)())
    await client.send_raw(
        dumps({"event": "user-list", "ack": 1, "data": None}) + " " * 900
    )
    assert (await client.recv())["ack"] == 1


async def test_slow_consumer_is_closed_with_1013(ws, make_user, settings):
    settings.OUTBOUND_QUEUE_MAX = 10
    user = await database_sync_to_async(make_user)()
    client = await ws(user)
    session = current_hub().sessions[client.sid]
    for i in range(11):  # queued faster than the writer can run
        session.emit("flood", i)
    assert await client.closed_code() == 1013
    await client.close()  # what the ASGI server sends after the app closed
    assert client.sid not in current_hub().sessions


def test_fallback_close_codes_for_servers_that_refuse_protocol_codes():
    from realtime.consumer import fallback_close_code

    assert [fallback_close_code(c) for c in (1009, 1013, 4401, 1000)] == [
        4009,
        4013,
        4401,
        1000,
    ]


async def test_frame_rate_limit(ws, make_user, settings):
    settings.FRAME_RATE = 1.0
    settings.FRAME_BURST = 3
    client = await ws(
        await database_sync_to_async(make_user)()
    )  # connect used one token
    replies = [await client.call("user-list") for _ in range(3)]
    assert ["data" in r for r in replies] == [True, True, False]
    assert replies[2]["error"]["code"] == "rate_limited"


async def test_handler_crash_is_internal_error_not_a_disconnect(ws, make_user):
    @events.on("test:boom")
    async def boom(session, payload):
        raise RuntimeError("kaput")

    try:
        client = await ws(await database_sync_to_async(make_user)())
        reply = await client.call("test:boom")
        assert reply["error"] == {
            "code": "internal",
            "message": "the server failed to handle the event",
        }
        assert "data" in await client.call("user-list")
    finally:
        events._events.pop("test:boom")


async def test_user_join_enters_rooms_from_providers(ws, make_user):
    user = await database_sync_to_async(make_user)("joiner", name="Joiner")

    async def provider(user_id):
        return [f"channel:{user_id}-a", f"channel:{user_id}-b"]

    events.user_rooms(provider)
    try:
        client = await ws(user)
        reply = await client.call("user-join", {"auth": {"token": "ignored"}})
        assert reply["data"] == {"id": user.id, "name": "Joiner"}
        sessions = await emit.room_sessions(room=f"channel:{user.id}-a")
        assert sessions == [client.sid]
        assert await emit.room_user_ids(room="presence") == [user.id]
    finally:
        events._room_providers.remove(provider)


async def test_heartbeat_writes_last_active_at_once_per_interval(ws, make_user):
    user = await database_sync_to_async(make_user)()
    client = await ws(user)
    assert (await client.call("heartbeat"))["data"] is None
    first = (await database_sync_to_async(User.objects.get)(pk=user.pk)).last_active_at
    assert first is not None
    await asyncio.sleep(0.01)
    await client.call("heartbeat")
    second = (await database_sync_to_async(User.objects.get)(pk=user.pk)).last_active_at
    assert second == first  # throttled: no second write within ACTIVE_WRITE_INTERVAL


async def test_heartbeat_writes_again_after_interval(ws, make_user, settings):
    settings.ACTIVE_WRITE_INTERVAL = 0.05
    user = await database_sync_to_async(make_user)()
    client = await ws(user)
    await client.call("heartbeat")
    first = (await database_sync_to_async(User.objects.get)(pk=user.pk)).last_active_at
    await asyncio.sleep(0.1)
    await client.call("heartbeat")
    second = (await database_sync_to_async(User.objects.get)(pk=user.pk)).last_active_at
    assert second > first


async def test_user_list_and_disconnect_cleanup(ws, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    a = await ws(alice)
    b1 = await ws(bob)
    b2 = await ws(bob)
    assert (await a.call("user-list"))["data"] == {
        "user_ids": sorted([alice.id, bob.id])
    }
    await b1.close()
    assert (await a.call("user-list"))["data"]["user_ids"] == sorted([alice.id, bob.id])
    await b2.close()
    assert (await a.call("user-list"))["data"]["user_ids"] == [alice.id]
    hub = current_hub()
    assert set(hub.sessions) == {a.sid}
    assert f"user:{bob.id}" not in hub.rooms
    assert await emit.room_sessions(room=f"user:{bob.id}") == []


async def test_presence_changes_are_coalesced(ws, make_user, settings):
    settings.PRESENCE_INTERVAL = 0.4
    watcher = await database_sync_to_async(make_user)("watcher")
    others = [await database_sync_to_async(make_user)() for _ in range(5)]
    w = await ws(watcher, join=True)
    await w.event("user-list", timeout=2)  # the watcher's own arrival
    loop = asyncio.get_running_loop()
    start = loop.time()
    for user in others:
        await ws(user)
    seen = []
    while loop.time() - start < 1.5:
        # (a communicator's timed-out receive cancels the app, so poll first)
        if await w.nothing(0.05):
            continue
        frame = await w.recv()
        if frame.get("event") == "user-list":
            seen.append((loop.time(), frame["data"]["user_ids"]))
    assert seen, "no presence broadcast"
    assert seen[-1][1] == sorted([watcher.id] + [u.id for u in others])
    assert len(seen) <= 3  # 5 connects, at most one broadcast per 0.4 s window
    gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:], strict=False)]
    assert all(g >= 0.35 for g in gaps), gaps


async def test_sessions_that_did_not_join_get_no_presence(ws, make_user, settings):
    settings.PRESENCE_INTERVAL = 0.2
    quiet = await ws(await database_sync_to_async(make_user)())
    await ws(await database_sync_to_async(make_user)())
    assert await quiet.nothing(0.6)


async def test_disallowed_origin_is_refused(settings):
    settings.ALLOWED_ORIGINS = ["https://app.example.com"]
    for origin, ok in [
        (b"https://evil.example.net", False),
        (b"https://app.example.com", True),
        (b"http://testserver", True),  # the server's own host
    ]:
        socket = InProcess(
            application, headers=[(b"origin", origin), (b"host", b"testserver")]
        )
        assert await socket.open() is ok, origin
        await socket.close()


async def test_missing_origin_is_allowed_for_services(ws, make_user):
    client = await ws(await database_sync_to_async(make_user)())
    assert client.sid


async def test_open_webuis_socket_io_path_is_the_same_endpoint(settings, make_user):
    """Open WebUI's front end asks for /ws/socket.io/: the same consumer, origin check
    included, answers there."""
    from testing.clients import SocketClient

    user = await database_sync_to_async(make_user)()
    transport = InProcess(application, path="/ws/socket.io/")
    client = await SocketClient.open(transport, user, protocol="openwebui")
    assert client.sid
    assert (await client.call("user-join", {"auth": {"token": "ignored"}}))["data"]
    await transport.close()

    settings.ALLOWED_ORIGINS = []
    refused = InProcess(
        application,
        path="/ws/socket.io/",
        headers=[(b"origin", b"https://evil.example.net"), (b"host", b"testserver")],
    )
    assert await refused.open() is False
    await refused.close()
    # Any other path under /ws/ is still not a socket.
    other = InProcess(application, path="/ws/socket.io/extra/")
    with pytest.raises(ValueError):
        await other.open()
