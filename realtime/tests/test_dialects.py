"""Dialects (realtime/dialects.py): the connect frame's `protocol`, a schema per
dialect, and emits whose members each get the frame of their own dialect."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from realtime import emit
from realtime.dialects import OPENWEBUI, REALTIME
from realtime.errors import CLOSE_UNAUTHORIZED, EventError
from realtime.events import EventSpec, Payload
from realtime.rooms import user_room
from testing.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_connect_picks_the_dialect_and_the_ack_says_which(ws, make_user):
    user = await database_sync_to_async(make_user)()
    plain, owui = await ws(), await ws()
    assert (await plain.connect(user))["protocol"] == REALTIME
    assert (await owui.connect(user, protocol=OPENWEBUI))["protocol"] == OPENWEBUI


async def test_an_unknown_dialect_is_refused(ws, make_user):
    user = await database_sync_to_async(make_user)()
    client = await ws()
    await client.send(
        {
            "event": "connect",
            "data": {"token": token_for(user), "protocol": "socket.io"},
            "ack": 0,
        }
    )
    assert await client.recv() == {
        "ack": 0,
        "error": {
            "code": "bad_request",
            "message": 'connect protocol must be "realtime" or "openwebui"',
        },
    }
    assert await client.closed_code() == CLOSE_UNAUTHORIZED


class Plain(Payload):
    update: str


class IntList(Payload):
    update: list[int]


def test_a_dialect_gets_its_own_schema():
    spec = EventSpec(
        name="x", schema=Plain, handler=None, dialects={OPENWEBUI: IntList}
    )
    assert spec.validate({"update": "AAE="}, REALTIME) == Plain(update="AAE=")
    assert spec.validate({"update": [0, 1]}, OPENWEBUI) == IntList(update=[0, 1])
    assert spec.validate({"update": "AAE="}) == Plain(update="AAE=")
    with pytest.raises(EventError):
        spec.validate({"update": [0, 1]}, REALTIME)
    with pytest.raises(EventError):
        spec.validate({"update": "AAE="}, OPENWEBUI)


async def test_each_member_gets_the_frame_of_its_dialect(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    plain = await ws(user)
    owui = await ws(user, protocol=OPENWEBUI)
    await emit.room_emit(
        room=user_room(user.id),
        event="thing",
        data={"n": 1},
        variants={OPENWEBUI: ("events", {"type": "thing", "n": 1})},
    )
    assert await plain.event("thing") == {"n": 1}
    assert await owui.event("events") == {"type": "thing", "n": 1}
    assert await plain.nothing() and await owui.nothing()


async def test_a_dialect_can_get_nothing(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    plain = await ws(user)
    owui = await ws(user, protocol=OPENWEBUI)
    await emit.user_emit(
        user_id=user.id, event="ydoc:user:joined", data={}, variants={OPENWEBUI: None}
    )
    assert await plain.event("ydoc:user:joined") == {}
    assert await owui.nothing(0.3)


async def test_session_emit_picks_the_dialect_too(backend, ws, make_user):
    user = await database_sync_to_async(make_user)()
    owui = await ws(user, protocol=OPENWEBUI)
    assert await emit.session_emit(
        sid=owui.sid,
        event="thing",
        data=1,
        variants={OPENWEBUI: ("other", 2)},
    )
    assert await owui.event("other") == 2


async def test_skip_user_id_leaves_out_every_session_of_that_user(
    backend, ws, make_user
):
    make = database_sync_to_async(make_user)
    alice, bob = await make(), await make()
    a1, a2, b = await ws(alice), await ws(alice), await ws(bob)
    room = "chat:shared-test"
    await emit.room_enter_for_users(room=room, user_ids=[alice.id, bob.id])
    # room.enter goes through the layer: wait until every session is in the room.
    for _ in range(100):
        if len(await emit.room_sessions(room=room)) == 3:
            break
        await asyncio.sleep(0.02)
    await emit.room_emit(room=room, event="copy", data=1, skip_user_id=alice.id)
    assert await b.event("copy") == 1
    assert await a1.nothing() and await a2.nothing()
