"""The server-side emit API and the disconnect signals, on both layers (in one process;
test_cluster.py covers several processes)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from realtime import emit
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.hub import current_hub
from realtime.state import get_state
from testing.factories import users_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def users():
    return await users_create("alice", "bob", "carol")


async def test_room_emit_reaches_members_only_and_skips(backend, ws, users):
    alice, bob, carol = users
    a, b, c = await ws(alice), await ws(bob), await ws(carol)
    await emit.room_enter_for_users(room="channel:1", user_ids=[alice.id, bob.id])
    await _until(lambda: len(current_hub().rooms.get("channel:1", ())) == 2)
    await emit.room_emit(room="channel:1", event="events:channel", data={"n": 1})
    assert await a.event("events:channel") == {"n": 1}
    assert await b.event("events:channel") == {"n": 1}
    assert await c.nothing(0.3)
    await emit.room_emit(
        room="channel:1", event="events:channel", data={"n": 2}, skip_sid=a.sid
    )
    assert await b.event("events:channel") == {"n": 2}
    assert await a.nothing(0.3)


async def test_one_layer_member_per_instance_however_many_sessions(backend, ws, users):
    alice = users[0]
    clients = [await ws(alice) for _ in range(3)]
    hub = current_hub()
    assert len(hub.rooms[f"user:{alice.id}"]) == 3
    routes = await get_state().routes_for(rooms=[f"user:{alice.id}"])
    assert routes == {f"user:{alice.id}": {hub.channel}}
    await emit.user_emit(user_id=alice.id, event="ping", data=1)
    for client in clients:
        assert await client.event("ping") == 1


async def test_session_emit(backend, ws, users):
    a1, a2 = await ws(users[0]), await ws(users[0])
    assert await emit.session_emit(sid=a2.sid, event="only-you", data="x") is True
    assert await a2.event("only-you") == "x"
    assert await a1.nothing(0.3)
    assert await emit.session_emit(sid="no-such-session", event="x", data=None) is False


async def test_leave_for_users_stops_delivery(backend, ws, users):
    alice, bob, _ = users
    a, b = await ws(alice), await ws(bob)
    await emit.room_enter_for_users(room="note:5", user_ids=[alice.id, bob.id])
    await _until(lambda: len(current_hub().rooms.get("note:5", ())) == 2)
    await emit.room_leave_for_users(room="note:5", user_ids=[bob.id])
    await _until(lambda: len(current_hub().rooms.get("note:5", ())) == 1)
    assert await emit.room_user_ids(room="note:5") == [alice.id]
    await emit.room_emit(room="note:5", event="e", data=None)
    assert await a.event("e") is None
    assert await b.nothing(0.3)


async def test_user_disconnect_closes_every_socket_of_that_user(backend, ws, users):
    alice, bob, _ = users
    a1, a2, b = await ws(alice), await ws(alice), await ws(bob)
    await emit.user_disconnect(user_id=alice.id, reason="test")
    assert await a1.closed_code() == CLOSE_UNAUTHORIZED
    assert await a2.closed_code() == CLOSE_UNAUTHORIZED
    assert (await b.call("user-list"))["data"]["user_ids"] == [bob.id]


async def test_session_disconnect(backend, ws, users):
    a1, a2 = await ws(users[0]), await ws(users[0])
    assert await emit.session_disconnect(sid=a1.sid, code=4000) is True
    assert await a1.closed_code() == 4000
    assert "data" in await a2.call("user-list")


async def test_sync_api_from_sync_code(backend, ws, users):
    a = await ws(users[0])
    await sync_to_async(emit.user_emit_sync)(
        user_id=users[0].id, event="hello", data=[1]
    )
    assert await a.event("hello") == [1]
    assert await sync_to_async(emit.online_user_ids_sync)() == [users[0].id]


async def test_deactivating_a_user_closes_their_sockets(backend, ws, users):
    alice, bob, _ = users
    a, b = await ws(alice), await ws(bob)

    def deactivate():
        alice.is_active = False
        alice.save()

    await database_sync_to_async(deactivate)()
    assert await a.event("disconnect") == {"reason": "user deactivated"}
    assert await a.closed_code() == CLOSE_UNAUTHORIZED
    assert await b.nothing(0.2)


async def test_password_change_closes_sockets_but_other_saves_do_not(ws, users):
    alice = users[0]
    a = await ws(alice)

    def rename():
        alice.name = "Alicia"
        alice.save()

    await database_sync_to_async(rename)()
    assert await a.nothing(0.3)

    def change_password():
        alice.set_password("brand-new-password")
        alice.save()

    await database_sync_to_async(change_password)()
    assert await a.event("disconnect") == {"reason": "password changed"}
    assert await a.closed_code() == CLOSE_UNAUTHORIZED


async def test_group_membership_survives_interleaved_leave_and_join(ws, users):
    alice = users[0]
    a = await ws(alice)
    hub = current_hub()
    session = hub.sessions[a.sid]
    # The last leave and a new join race; the room must end up joined and grouped.
    await asyncio.gather(
        hub.leave(session, f"user:{alice.id}"), hub.join(session, "room:x")
    )
    await asyncio.gather(
        hub.join(session, "room:y"),
        hub.leave(session, "room:x"),
        hub.join(session, "room:x"),
    )
    assert hub.routed_rooms() == set(hub.rooms) == {"room:x", "room:y"}


async def test_concurrent_emits_leave_in_few_layer_messages(backend, monkeypatch):
    layer = get_channel_layer()
    remote = await layer.new_channel()  # stands for another instance
    state = get_state()
    rooms = [f"doc_{i}" for i in range(100)]
    for room in rooms:
        await state.route_add(room=room, channel=remote, instance_id="elsewhere")
    sends = []
    real_send = layer.send

    async def counting_send(channel, message):
        sends.append(channel)
        await real_send(channel, message)

    monkeypatch.setattr(layer, "send", counting_send)
    await asyncio.gather(
        *(emit.room_emit(room=room, event="e", data=i) for i, room in enumerate(rooms))
    )
    assert 1 <= len(sends) <= 10, len(sends)
    items = []
    while len(items) < 100:
        batch = await asyncio.wait_for(layer.receive(remote), 2)
        assert batch["type"] == "batch"
        items.extend(batch["items"])
    assert [item["room"] for item in items] == rooms  # one message each, in order


async def _until(predicate, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)
