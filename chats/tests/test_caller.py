"""The event caller: round trip, timeout, disconnect, ownership, client errors."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chats.caller import get_event_call
from realtime.errors import CallError, EventError

pytestmark = pytest.mark.django_db(transaction=True)


async def answer_next_call(client, reply: dict) -> dict:
    """Wait for a call frame and answer it; returns the call frame."""
    while True:
        frame = await client.recv()
        if "call" in frame:
            await client.send({"reply": frame["call"], **reply})
            return frame


async def test_round_trip(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    call = get_event_call(user.id, tab.sid, "chat-1", "m1", timeout=3)
    pending = asyncio.ensure_future(
        call({"type": "execute:python", "data": {"code": "1+1"}})
    )
    frame = await answer_next_call(tab, {"data": {"result": 2}})
    assert frame["event"] == "events"
    # session_id twice: Open WebUI's front end answers only when data.session_id is
    # its own socket id.
    assert frame["data"] == {
        "chat_id": "chat-1",
        "message_id": "m1",
        "session_id": tab.sid,
        "data": {
            "type": "execute:python",
            "data": {"code": "1+1", "session_id": tab.sid},
        },
    }
    assert await pending == {"result": 2}


async def test_only_that_session_is_called(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    target, other_tab = await ws(user), await ws(user)
    call = get_event_call(user.id, target.sid, "c", "m", timeout=3)
    pending = asyncio.ensure_future(call({"type": "execute:tool", "data": {}}))
    await answer_next_call(target, {"data": "ok"})
    assert await pending == "ok"
    assert await other_tab.nothing(0.2)


async def test_timeout(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    call = get_event_call(user.id, tab.sid, "c", "m", timeout=0.3)
    with pytest.raises(EventError) as raised:
        await call({"type": "execute:python", "data": {}})
    assert raised.value.code == "timeout"
    # A late reply is answered as a stray reply; the socket stays usable.
    frame = await tab.recv()
    await asyncio.sleep(0.1)  # the session forgets the call once the caller gave up
    await tab.send({"reply": frame["call"], "data": 1})
    assert (await tab.recv())["data"]["code"] == "bad_request"
    assert "data" in await tab.call("user-list")


async def test_disconnect_before_reply_fails_at_once(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    call = get_event_call(user.id, tab.sid, "c", "m", timeout=10)
    pending = asyncio.ensure_future(call({"type": "execute:python", "data": {}}))
    assert "call" in await tab.recv()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await tab.close()
    with pytest.raises(EventError) as raised:
        await pending
    assert raised.value.code == "disconnected"
    assert loop.time() - start < 2


async def test_unknown_session_is_disconnected(backend, make_user):
    user = await database_sync_to_async(make_user)()
    call = get_event_call(user.id, "no-such-session", "c", "m", timeout=1)
    with pytest.raises(EventError) as raised:
        await call({"type": "execute:python", "data": {}})
    assert raised.value.code == "disconnected"


async def test_another_users_session_is_forbidden(backend, ws, make_user):
    owner = await database_sync_to_async(make_user)()
    other = await database_sync_to_async(make_user)()
    victim_tab = await ws(other)
    call = get_event_call(owner.id, victim_tab.sid, "c", "m", timeout=1)
    with pytest.raises(EventError) as raised:
        await call({"type": "execute:python", "data": {}})
    assert raised.value.code == "forbidden"
    assert await victim_tab.nothing(0.2)


async def test_client_error_reply(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    call = get_event_call(user.id, tab.sid, "c", "m", timeout=3)
    pending = asyncio.ensure_future(call({"type": "execute:python", "data": {}}))
    await answer_next_call(tab, {"error": {"code": "declined", "message": "no"}})
    with pytest.raises(CallError) as raised:
        await pending
    assert (raised.value.code, raised.value.message) == ("declined", "no")


async def test_client_cannot_fake_a_disconnect(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    tab = await ws(user)
    call = get_event_call(user.id, tab.sid, "c", "m", timeout=3)
    pending = asyncio.ensure_future(call({"type": "execute:python", "data": {}}))
    await answer_next_call(tab, {"error": {"code": "disconnected"}})
    with pytest.raises(CallError):
        await pending
