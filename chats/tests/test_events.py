"""events:chat on sockets (chats/events.py, chats/presence.py): joining a chat's room,
presence, typing and its timeout, last_read_at, in both dialects."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chats.models import ChatRead
from realtime.dialects import OPENWEBUI
from realtime.state import get_state
from testing.chat_events import (
    call,
    chat_events,
    event,
    frame,
    quiet,
    send,
    users,
)
from testing.factories import chat_create, chat_shared, users_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def trio():
    return await users_create("alice", "bob", "carol")


async def join(client, chat) -> dict:
    return await call(client, frame(chat.id, "join"))


async def test_join_answers_true_and_the_room_hears_who_is_there(ws, trio):
    alice, bob, _ = trio
    chat = await chat_shared(alice, readers=[bob])
    a = await ws(alice, protocol=OPENWEBUI)
    assert await join(a, chat) == {"ack": 1, "data": True}
    assert await chat_events(a, "chat:presence") == {
        "chat_id": chat.id,
        "data": {"type": "chat:presence", "data": {"users": users(alice)}},
    }
    b = await ws(bob)  # the realtime dialect: the same answer and events
    assert (await join(b, chat))["data"] is True
    for client in (a, b):
        presence = await chat_events(client, "chat:presence")
        assert presence["data"]["data"]["users"] == users(alice, bob)


async def test_another_users_chat_is_refused_in_each_dialects_way(ws, trio):
    alice, bob, _ = trio
    chat = await chat_create(alice)
    owui = await ws(bob, protocol=OPENWEBUI)
    assert (await join(owui, chat))["data"] is False
    error = await event(owui, "error")
    assert error == {
        "code": "not_found",
        "message": "no such chat",
        "event": "events:chat",
    }
    plain = await ws(bob)
    reply = await join(plain, chat)
    assert reply["error"] == {"code": "not_found", "message": "no such chat"}
    # A missing chat looks the same as someone else's.
    assert (await call(plain, frame("nope", "join")))["error"]["code"] == "not_found"
    # Neither got in: alice alone is present when she joins.
    a = await ws(alice)
    await join(a, chat)
    presence = await chat_events(a, "chat:presence")
    assert presence["data"]["data"]["users"] == users(alice)
    assert await quiet(owui, "chat:presence") and await quiet(plain, "chat:presence")


async def test_typing_is_relayed_to_the_others_and_timed_out(ws, trio, settings):
    settings.CHAT_TYPING_TIMEOUT = 0.3
    alice, bob, _ = trio
    chat = await chat_shared(alice, writers=[bob])
    a, b = await ws(alice, protocol=OPENWEBUI), await ws(bob, protocol=OPENWEBUI)
    await join(a, chat)
    await join(b, chat)
    # Open WebUI sends typing without an ack, and never `false`.
    await send(b, frame(chat.id, "typing", {"typing": True}))
    assert await chat_events(a, "typing") == {
        "chat_id": chat.id,
        "user_id": bob.id,
        "user": {"id": bob.id, "name": "Bob"},
        "shared": True,
        "data": {"type": "typing", "data": {"typing": True}},
    }
    ended = await chat_events(a, "typing", timeout=2)
    assert ended["data"]["data"] == {"typing": False}
    assert ended["user_id"] == bob.id
    assert await quiet(b, "typing")  # the sender hears neither


async def test_refreshes_keep_typing_alive_and_are_not_relayed_twice(
    ws, trio, settings
):
    settings.CHAT_TYPING_TIMEOUT = 0.6
    settings.CHAT_TYPING_INTERVAL = 10
    alice, bob, _ = trio
    chat = await chat_shared(alice, writers=[bob])
    a, b = await ws(alice), await ws(bob)
    await join(a, chat)
    await join(b, chat)
    typing = frame(chat.id, "typing", {"typing": True})
    assert (await call(b, typing))["data"] is True
    assert (await chat_events(a, "typing"))["data"]["data"]["typing"] is True
    for _ in range(3):  # refreshes inside the timeout: still typing, nothing relayed
        await asyncio.sleep(0.3)
        assert (await call(b, typing))["data"] is True
    assert await quiet(a, "typing", 0.3)
    assert (await chat_events(a, "typing"))["data"]["data"]["typing"] is False
    # A new start within CHAT_TYPING_INTERVAL of the last relayed one is refused.
    reply = await call(b, typing)
    assert reply["error"]["code"] == "rate_limited"
    assert await quiet(a, "typing")


async def test_typing_false_ends_it_at_once(ws, trio):
    alice, bob, _ = trio
    chat = await chat_shared(alice, writers=[bob])
    a, b = await ws(alice), await ws(bob)
    await join(a, chat)
    await join(b, chat)
    await call(b, frame(chat.id, "typing", {"typing": True}))
    await call(b, frame(chat.id, "typing", {"typing": False}))
    seen = [(await chat_events(a, "typing"))["data"]["data"]["typing"] for _ in "12"]
    assert seen == [True, False]
    # false while not typing relays nothing.
    await call(b, frame(chat.id, "typing", {"typing": False}))
    assert await quiet(a, "typing")


async def test_read_only_grantee_may_join_but_not_type(ws, trio):
    alice, bob, _ = trio
    chat = await chat_shared(alice, readers=[bob])
    a, b = await ws(alice), await ws(bob, protocol=OPENWEBUI)
    await join(a, chat)
    assert (await join(b, chat))["data"] is True
    await send(b, frame(chat.id, "typing", {"typing": True}))
    assert (await event(b, "error"))["code"] == "forbidden"
    reply = await call(b, frame(chat.id, "typing", {"typing": True}))
    assert reply["data"] is False  # with an ack: the bare boolean
    assert await quiet(a, "typing")


async def test_typing_before_joining_is_forbidden(ws, trio):
    alice, _, _ = trio
    chat = await chat_create(alice)
    a = await ws(alice)
    reply = await call(a, frame(chat.id, "typing", {"typing": True}))
    assert reply["error"] == {
        "code": "forbidden",
        "message": "join the chat first (events:chat join)",
    }


async def test_leave_and_disconnect_update_presence_and_end_typing(backend, ws, trio):
    alice, bob, carol = trio
    chat = await chat_shared(alice, writers=[bob, carol])
    a, b, c = await ws(alice), await ws(bob), await ws(carol, protocol=OPENWEBUI)
    for client in (a, b, c):
        await join(client, chat)
    await chat_events(a, "chat:presence")
    await chat_events(a, "chat:presence")
    assert (await chat_events(a, "chat:presence"))["data"]["data"]["users"] == users(
        alice, bob, carol
    )
    await call(b, frame(chat.id, "typing", {"typing": True}))
    await call(c, frame(chat.id, "typing", {"typing": True}))
    await chat_events(a, "typing")
    await chat_events(a, "typing")
    await send(b, frame(chat.id, "leave"))
    ended = await chat_events(a, "typing")
    assert (ended["user_id"], ended["data"]["data"]["typing"]) == (bob.id, False)
    presence = await chat_events(a, "chat:presence")
    assert presence["data"]["data"]["users"] == users(alice, carol)
    await c.close()
    ended = await chat_events(a, "typing")
    assert (ended["user_id"], ended["data"]["data"]["typing"]) == (carol.id, False)
    presence = await chat_events(a, "chat:presence")
    assert presence["data"]["data"]["users"] == users(alice)
    # Leaving a chat one is not in is harmless, and bob is out: no typing from him.
    assert (await call(b, frame(chat.id, "leave")))["data"] is True
    reply = await call(b, frame(chat.id, "typing", {"typing": True}))
    assert reply["error"]["code"] == "forbidden"


async def test_last_read_at_is_stored_and_told_to_every_session_of_the_user(ws, trio):
    alice, bob, _ = trio
    chat = await chat_shared(alice, readers=[bob])
    tab1, tab2 = await ws(bob, protocol=OPENWEBUI), await ws(bob)
    other = await ws(alice)
    await send(tab1, frame(chat.id, "last_read_at"))
    listed = await chat_events(tab1, "chat:list")
    assert listed == await chat_events(tab2, "chat:list")
    stored = await database_sync_to_async(ChatRead.objects.get)(chat=chat, user=bob)
    assert listed == {
        "chat_id": chat.id,
        "data": {
            "type": "chat:list",
            "data": {
                "chat_id": chat.id,
                "last_read_at": int(stored.last_read_at.timestamp()),
            },
        },
    }
    assert await quiet(other, "chat:list")


async def test_last_read_at_of_another_users_chat_stores_nothing(ws, trio):
    alice, bob, _ = trio
    chat = await chat_create(alice)
    b = await ws(bob, protocol=OPENWEBUI)
    await send(b, frame(chat.id, "last_read_at"))
    assert (await event(b, "error"))["code"] == "not_found"
    assert await database_sync_to_async(ChatRead.objects.count)() == 0


@pytest.mark.parametrize(
    "data, where",
    [
        ({"chat_id": "c", "data": {"type": "subscribe"}}, "data.type"),
        ({"chat_id": "c", "data": {"type": "typing"}}, "data"),
        ({"chat_id": "c", "data": {"type": "typing", "data": {"typing": 1}}}, "typing"),
        ({"chat_id": "c", "data": {"type": "join", "data": {"typing": True}}}, "data"),
        ({"chat_id": "c", "data": {"type": "join"}, "extra": 1}, "extra"),
        ({"chat_id": 5, "data": {"type": "join"}}, "chat_id"),
        ({"data": {"type": "join"}}, "chat_id"),
    ],
)
async def test_bad_frames_are_bad_request_and_harm_nothing(ws, trio, data, where):
    alice, _, _ = trio
    chat = await chat_create(alice)
    a = await ws(alice, protocol=OPENWEBUI)
    reply = await call(a, data)
    assert reply["error"]["code"] == "bad_request"
    assert where in reply["error"]["message"]
    assert (await join(a, chat))["data"] is True  # the socket still works


async def test_spoofed_identity_fields_are_ignored(ws, trio):
    alice, bob, carol = trio
    chat = await chat_shared(alice, writers=[bob])
    a, b = await ws(alice), await ws(bob, protocol=OPENWEBUI)
    await join(a, chat)
    await chat_events(a, "chat:presence")  # her own join's
    spoof = {
        "user_id": carol.id,
        "user_name": "Carol",
        "user_color": "#ff0000",
        "socket_id": a.sid,
        "auth": {"token": "x"},
    }
    assert (await call(b, frame(chat.id, "join", **spoof)))["data"]
    presence = await chat_events(a, "chat:presence")
    assert presence["data"]["data"]["users"] == users(alice, bob)
    await send(b, frame(chat.id, "typing", {"typing": True}, **spoof))
    typing = await chat_events(a, "typing")
    assert (typing["user_id"], typing["user"]) == (
        bob.id,
        {"id": bob.id, "name": "Bob"},
    )
    # carol, whom bob named, was never let in.
    c = await ws(carol)
    reply = await call(c, frame(chat.id, "typing", {"typing": True}))
    assert reply["error"]["code"] == "forbidden"


async def test_usage_as_open_webui_sends_it_touches_no_chat(ws, trio):
    alice, bob, _ = trio
    chat = await chat_shared(alice, writers=[bob])
    a = await ws(alice)
    await join(a, chat)
    await chat_events(a, "chat:presence")
    b = await ws(bob, protocol=OPENWEBUI)
    usage = {"action": "chat", "model": "fake", "chat_id": chat.id}
    reply = await b.call("usage", usage)
    assert reply == {"ack": reply["ack"], "data": None}
    models = await get_state().usage_models()
    assert models == {"fake": {b.sid}}
    # chat_id names someone else's chat: nothing is stored or sent about it.
    assert await a.nothing(0.3)
    count = await database_sync_to_async(chat.messages.count)()
    assert count == 0
    bad = await b.call("usage", {**usage, "chat_id": 7})
    assert bad["error"]["code"] == "bad_request"


async def test_a_socket_joins_at_most_twenty_chats(ws, trio):
    alice, _, _ = trio
    chats = [await chat_create(alice) for _ in range(21)]
    a = await ws(alice, protocol=OPENWEBUI)
    for chat in chats[:20]:
        assert (await join(a, chat))["data"] is True
    assert (await join(a, chats[20]))["data"] is False
    error = await event(a, "error")
    assert error["code"] == "bad_request" and "at most 20" in error["message"]
    assert (await join(a, chats[0]))["data"] is True  # one it is in: fine
    await call(a, frame(chats[0].id, "leave"))
    assert (await join(a, chats[20]))["data"] is True
