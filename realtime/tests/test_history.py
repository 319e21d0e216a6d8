"""Positions, history and recovery of rooms (realtime/history.py), on both stores."""

import asyncio

import pytest

from realtime import emit
from realtime.errors import CLOSE_UNAUTHORIZED
from realtime.hub import get_hub
from realtime.rooms import user_room
from testing.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _events(client, name="tick", count=1, timeout=3.0) -> list[dict]:
    frames = []
    while len(frames) < count:
        frame = await client.recv(timeout)
        if frame.get("event") == name:
            frames.append(frame)
    return frames


async def _emit(user, n, start=0, **extra):
    return [
        await emit.user_emit(user_id=user.id, event="tick", data={"n": i}, **extra)
        for i in range(start, start + n)
    ]


async def test_events_to_a_user_room_carry_growing_offsets(backend, people, ws):
    alice = people["alice"]
    client = await ws(alice)
    positions = await _emit(alice, 3)
    frames = await _events(client, count=3)
    room = user_room(alice.id)
    assert [f["data"]["n"] for f in frames] == [0, 1, 2]
    assert {f["room"] for f in frames} == {room}
    assert len({f["epoch"] for f in frames}) == 1
    first = frames[0]["offset"]
    assert [f["offset"] for f in frames] == [first, first + 1, first + 2]
    # What the emit returned is what the socket got.
    assert [(p.room, p.epoch, p.offset) for p in positions] == [
        (f["room"], f["epoch"], f["offset"]) for f in frames
    ]


async def test_volatile_events_and_rooms_without_history_carry_no_position(
    backend, people, ws
):
    alice = people["alice"]
    client = await ws(alice)
    hub = await get_hub()
    await hub.join(hub.sessions[client.sid], "note:7")
    assert (
        await emit.user_emit(user_id=alice.id, event="tick", data=1, volatile=True)
        is None
    )
    assert await emit.room_emit(room="note:7", event="tick", data=2) is None
    for frame in await _events(client, count=2):
        assert set(frame) == {"event", "data"}, frame


async def test_connect_ack_gives_the_position_to_recover_from(backend, people, ws):
    alice = people["alice"]
    await _emit(alice, 2)  # nobody listening: the room's history still counts
    client = await ws()
    hello = await client.connect(alice)
    position = hello["positions"][user_room(alice.id)]
    assert position["offset"] == 2
    await _emit(alice, 1)
    (frame,) = await _events(client)
    assert (frame["epoch"], frame["offset"]) == (position["epoch"], 3)


async def test_a_socket_that_returns_gets_what_it_missed_then_live(backend, people, ws):
    alice = people["alice"]
    room = user_room(alice.id)
    first = await ws()
    hello = await first.connect(alice)
    await _emit(alice, 2)
    seen = await _events(first, count=2)
    await first.abort()
    await _emit(alice, 3, start=2)  # while away
    second = await ws()
    last = seen[-1]
    hello = await second.connect(
        alice,
        recover={
            "sid": first.sid,
            "rooms": {room: {"epoch": last["epoch"], "offset": last["offset"]}},
        },
    )
    assert hello["recovered"] is True
    assert hello["recovery"][room] == {
        "recovered": True,
        "epoch": last["epoch"],
        "offset": last["offset"] + 3,
        "replayed": 3,
    }
    await _emit(alice, 1, start=5)
    frames = await _events(second, count=4)
    assert [f["data"]["n"] for f in frames] == [2, 3, 4, 5]
    assert [f["offset"] for f in frames] == [last["offset"] + i for i in (1, 2, 3, 4)]
    assert await second.nothing(0.2)


async def test_events_sent_while_recovering_wait_behind_the_replay(backend, people, ws):
    # Live events emitted while the recovery reads the window come after it, once:
    # also one stored before the read whose delivery here comes after the replay
    # (about one run in eight sent an event twice before the replay kept a floor).
    alice = people["alice"]
    room = user_room(alice.id)
    first = await ws()
    hello = await first.connect(alice)
    start = hello["positions"][room]
    await first.abort()
    await _emit(alice, 20)
    second = await ws()
    sender = asyncio.create_task(_emit(alice, 20, start=20))
    await second.connect(alice, recover={"rooms": {room: start}})
    await sender
    frames = await _events(second, count=40)
    assert [f["data"]["n"] for f in frames] == list(range(40))
    assert [f["offset"] for f in frames] == list(range(1, 41))
    assert await second.nothing(0.2)


async def test_own_echo_skipped_live_is_not_replayed(backend, people, ws):
    alice = people["alice"]
    room = user_room(alice.id)
    first = await ws()
    hello = await first.connect(alice)
    start = hello["positions"][room]
    await emit.user_emit(
        user_id=alice.id, event="tick", data="mine", skip_sid=first.sid
    )
    await _emit(alice, 1)
    await first.abort()
    second = await ws()
    hello = await second.connect(
        alice, recover={"sid": first.sid, "rooms": {room: start}}
    )
    assert hello["recovery"][room]["replayed"] == 1
    (frame,) = await _events(second)
    assert frame["data"] == {"n": 0}


@pytest.mark.parametrize(
    ("settings_change", "position", "reason"),
    [
        ({"HISTORY_SIZE": 3}, "start", "trimmed"),
        ({"HISTORY_TTL": 0.05}, "start", "expired"),
        ({}, "other-epoch", "epoch"),
        ({}, "future", "ahead"),
    ],
)
async def test_a_gap_the_window_does_not_cover_is_not_recovered(
    backend, people, ws, settings, settings_change, position, reason
):
    for name, value in settings_change.items():
        setattr(settings, name, value)
    alice = people["alice"]
    room = user_room(alice.id)
    first = await ws()
    start = (await first.connect(alice))["positions"][room]
    await first.abort()
    await _emit(alice, 5)
    await asyncio.sleep(0.1)
    asked = {
        "start": start,
        "other-epoch": {"epoch": "not-" + start["epoch"], "offset": 1},
        "future": {"epoch": start["epoch"], "offset": start["offset"] + 99},
    }[position]
    second = await ws()
    hello = await second.connect(alice, recover={"rooms": {room: asked}})
    assert hello["recovered"] is False
    result = hello["recovery"][room]
    assert result["reason"] == reason
    assert (result["epoch"], result["offset"]) == (start["epoch"], start["offset"] + 5)
    # Nothing is replayed; live events flow.
    await _emit(alice, 1, start=5)
    (frame,) = await _events(second)
    assert frame["data"] == {"n": 5} and frame["offset"] == start["offset"] + 6


async def test_another_users_room_presented_gets_nothing_of_theirs(backend, people, ws):
    alice, bob = people["alice"], people["bob"]
    bob_room = user_room(bob.id)
    spy = await ws()
    await _emit(bob, 3)
    hello = await spy.connect(
        alice, recover={"rooms": {bob_room: {"epoch": "x", "offset": 0}}}
    )
    assert bob_room not in hello["recovery"]
    await _emit(bob, 1, start=3)
    assert await spy.nothing(0.3)
    # Nor can it read that room's history.
    reply = await spy.call("history", {"room": bob_room, "epoch": "x", "offset": 0})
    assert reply["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "recover",
    [
        [],
        {"rooms": []},
        {"rooms": {"user:1": {"epoch": "e", "offset": -1}}},
        {"rooms": {"user:1": {"epoch": "e", "offset": "3"}}},
        {"rooms": {"user:1": {"epoch": "e" * 65, "offset": 3}}},
        {"rooms": {f"user:{i}": {"epoch": "e", "offset": 1} for i in range(101)}},
        {"rooms": {}, "extra": 1},
    ],
)
async def test_a_malformed_recover_is_a_bad_request(backend, people, ws, recover):
    client = await ws()
    await client.send(
        {
            "event": "connect",
            "data": {"token": token_for(people["alice"]), "recover": recover},
            "ack": 0,
        }
    )
    reply = await client.recv()
    assert reply["error"]["code"] == "bad_request"
    assert reply["error"]["message"].startswith("connect recover must be")
    assert await client.closed_code() == CLOSE_UNAUTHORIZED


async def test_history_lists_the_events_after_a_position(backend, people, ws):
    alice = people["alice"]
    room = user_room(alice.id)
    client = await ws(alice)
    positions = await _emit(alice, 4)
    await _events(client, count=4)
    reply = await client.call(
        "history",
        {"room": room, "epoch": positions[1].epoch, "offset": positions[1].offset},
    )
    data = reply["data"]
    assert data["recovered"] is True
    assert (data["epoch"], data["offset"]) == (positions[3].epoch, positions[3].offset)
    assert data["events"] == [
        {"event": "tick", "data": {"n": 2}, "offset": positions[2].offset},
        {"event": "tick", "data": {"n": 3}, "offset": positions[3].offset},
    ]
    bad = await client.call("history", {"room": room, "epoch": "e", "offset": -5})
    assert bad["error"]["code"] == "bad_request"


async def test_a_live_event_arriving_after_the_replay_is_not_sent_twice(
    backend, people, ws, monkeypatch
):
    # The outbox stores an event in the window, then sends it through the layer:
    # its delivery to an instance can come after a returning socket's recovery read
    # and replay (bench.recovery found 2-3 duplicates per 110 reconnects before the
    # replay kept a floor). Here that delivery is held until the replay is done.
    alice = people["alice"]
    room = user_room(alice.id)
    keeper = await ws(alice)  # another tab: keeps alice's room routed here
    first = await ws()
    start = (await first.connect(alice))["positions"][room]
    await first.abort()
    hub = await get_hub()
    held, fan_out = [], hub.fan_out
    monkeypatch.setattr(hub, "fan_out", held.append)
    (position,) = await _emit(alice, 1)
    for _ in range(100):  # the layer hands it to the (held) fan-out
        if held:
            break
        await asyncio.sleep(0.01)
    assert held, "the event never reached the instance"
    second = await ws()
    hello = await second.connect(
        alice, recover={"sid": first.sid, "rooms": {room: start}}
    )
    assert hello["recovery"][room]["replayed"] == 1
    monkeypatch.setattr(hub, "fan_out", fan_out)
    for message in held:  # the live delivery, late
        hub.fan_out(message)
    (frame,) = await _events(second)
    assert frame["offset"] == position.offset
    (live,) = await _events(keeper)  # the other tab gets it live, once
    assert live["offset"] == position.offset
    assert await second.nothing(0.3), "the replayed event came again, live"


async def test_a_big_batch_takes_consecutive_offsets_per_room(backend, settings):
    from realtime.state import get_state

    settings.HISTORY_SIZE = 3000
    state = get_state()
    appends = [("user:a" if i % 3 else "user:b", f"r{i}") for i in range(2500)]
    positions, _ = await state.history_publish(appends=appends, rooms=[])
    per_room: dict[str, list[int]] = {}
    for (room, _), (_, offset) in zip(appends, positions, strict=True):
        per_room.setdefault(room, []).append(offset)
    for offsets in per_room.values():
        assert offsets == list(range(1, len(offsets) + 1))
    epoch = positions[1][0]
    read = await state.history_read(room="user:a", epoch=epoch, offset=0, limit=3000)
    assert [record for _, record in read.items] == [
        record for room, record in appends if room == "user:a"
    ]
