"""The hub on its own, through its public methods, on the embedded default (memory
state, in-memory layer) and the real Redis: its registry keeps shared state and
routes right, its inbox dispatches what other instances send, and its liveness puts
back what a lapse lost."""

import asyncio
import json

import pytest

from realtime import tasks
from realtime.hub import get_hub
from realtime.layer import layer_handler, layer_types
from realtime.session import Session
from realtime.state import get_state


class Socket:
    """A session's transport that records frames."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.closed: list[int] = []

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def close(self, code: int) -> None:
        self.closed.append(code)


async def connected(hub, user_id: int) -> tuple[Session, Socket]:
    socket = Socket()
    session = Session(send=socket.send, close=socket.close)
    session.user_id = user_id
    session.start()
    await hub.register(session)
    return session, socket


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_registry_keeps_shared_state_and_routes(backend):
    hub = await get_hub()
    state = get_state()
    a, _ = await connected(hub, 1)
    b, _ = await connected(hub, 1)
    assert await state.user_sessions(user_id=1) == {a.sid, b.sid}
    assert hub.routed_rooms() == {"user:1"}
    assert await hub.join(a, "room:x") and not await hub.join(a, "room:x")
    await hub.join(b, "room:x")
    routes = await state.routes_for(rooms=["room:x"])
    assert routes == {"room:x": {hub.channel}}  # one route however many sessions
    await hub.leave(a, "room:x")
    assert await state.routes_for(rooms=["room:x"]) == {"room:x": {hub.channel}}
    await hub.unregister(b)
    assert (await state.routes_for(rooms=["room:x"])).get("room:x", set()) == set()
    assert hub.routed_rooms() == {"user:1"}
    await hub.unregister(a)
    assert hub.routed_rooms() == set() and await state.online_user_ids() == set()


async def test_inbox_dispatches_by_type(backend):
    hub = await get_hub()
    a, socket_a = await connected(hub, 1)
    b, socket_b = await connected(hub, 2)
    await hub.join(a, "room:x")
    await hub.join(b, "room:x")
    frame = json.dumps({"event": "e", "data": 1})
    await hub.dispatch(
        {
            "type": "batch",
            "items": [
                {"type": "room.emit", "room": "room:x", "frame": frame, "skip": a.sid},
                {"type": "session.emit", "sid": a.sid, "frame": frame},
                {"type": "session.emit", "sid": "gone", "frame": frame},
                {"type": "room.leave", "room": "room:x", "user_ids": [2]},
                {"type": "room.emit", "room": "room:x", "frame": frame},
            ],
        }
    )
    await settle()
    # b got the first room emit (a was skipped), then left; a got the rest.
    assert len(socket_b.frames) == 1 and len(socket_a.frames) == 2
    await hub.dispatch({"type": "user.close", "user_ids": [2], "reason": "bye"})
    await settle()
    assert socket_b.closed and socket_b.frames[-1]["event"] == "disconnect"
    assert b.sid not in hub.sessions
    await hub.dispatch({"type": "no.such.type"})  # logged and ignored


async def test_every_message_type_has_one_handler():
    # What the apps' modules register (at Django's app loading) covers every type.
    from realtime.layer import MESSAGES

    assert layer_types() == sorted(set(MESSAGES) - {"batch"})
    assert layer_handler("task.stop") is tasks.task_stop


async def test_task_stop_from_another_instance_stops_a_task_here(backend):
    hub = await get_hub()
    started = asyncio.Event()

    async def work():
        started.set()
        await asyncio.sleep(60)

    task_id = await tasks.create_task(work(), "item-1")
    await started.wait()
    await hub.dispatch({"type": "task.stop", "task_id": task_id, "reason": "admin"})
    for _ in range(100):
        if await tasks.get_task(task_id) is None:
            break
        await asyncio.sleep(0.01)
    assert await tasks.get_task(task_id) is None


@pytest.mark.redis
async def test_liveness_puts_back_what_a_lapse_lost(redis_settings):
    # (The embedded default's one process is always alive to itself.)
    hub = await get_hub()
    session, _ = await connected(hub, 7)
    await hub.join(session, "room:y")

    async def work():
        await asyncio.sleep(60)

    task_id = await tasks.create_task(work(), "item-2", user_id=7)
    state = get_state()
    await state.instance_remove(instance_id=hub.instance_id)  # as a reap would
    assert await state.online_user_ids() == set()
    await hub.tick()
    assert await state.online_user_ids() == {7}
    assert await state.room_sessions(room="room:y") == {session.sid}
    assert await state.routes_for(rooms=["room:y"]) == {"room:y": {hub.channel}}
    assert (await tasks.get_task(task_id)).user_id == 7
    await tasks.stop_task(task_id)


async def tick_through_an_outage(hub, state, monkeypatch) -> None:
    """One liveness tick whose renewal fails (Redis failing over), then Redis back."""
    refresh = state.instance_refresh

    async def unreachable(**kwargs):
        raise ConnectionError("failing over")

    monkeypatch.setattr(state, "instance_refresh", unreachable)
    with pytest.raises(ConnectionError):
        await hub.tick()
    monkeypatch.setattr(state, "instance_refresh", refresh)


@pytest.mark.redis
@pytest.mark.also_on_redis_cluster
async def test_first_renewal_after_an_outage_puts_back_writes_a_failover_lost(
    redis_settings, monkeypatch
):
    # A failover keeps the liveness key but may lose the writes the old primary had
    # not replicated yet; here a session's record and a route vanish "in the gap".
    hub = await get_hub()
    session, _ = await connected(hub, 8)
    await hub.join(session, "room:z")
    state = get_state()
    await state.session_remove(sid=session.sid)
    await state.route_remove(
        room="room:z", channel=hub.channel, instance_id=hub.instance_id
    )
    await hub.tick()  # the key is there: nothing to put back yet
    assert await state.session_get(sid=session.sid) is None
    await tick_through_an_outage(hub, state, monkeypatch)
    await hub.tick()
    assert (await state.session_get(sid=session.sid)).user_id == 8
    assert await state.room_sessions(room="room:z") == {session.sid}
    assert await state.routes_for(rooms=["room:z"]) == {"room:z": {hub.channel}}


@pytest.mark.redis
async def test_after_an_outage_peers_get_a_ttl_to_renew_before_any_reap(
    redis_settings, monkeypatch
):
    # A failover longer than INSTANCE_TTL lapses every instance's key; the first to
    # reach the promoted replica must not reap the others before they renew.
    redis_settings.INSTANCE_TTL = 0.6
    hub = await get_hub()
    state = get_state()
    await state.instance_refresh(instance_id="peer", channel="c-peer", ttl=0.05)
    await state.session_add(sid="peer-s", user_id=9, instance_id="peer", channel="c")
    await asyncio.sleep(0.1)  # the peer's key lapsed
    await tick_through_an_outage(hub, state, monkeypatch)
    await hub.tick()
    assert await state.session_get(sid="peer-s") is not None  # not reaped yet
    await asyncio.sleep(0.7)
    await hub.tick()
    assert await state.session_get(sid="peer-s") is None  # now it is


@pytest.mark.parametrize("kind", ["room.enter", "room.leave"])
async def test_room_moves_reach_only_the_named_users(backend, kind):
    hub = await get_hub()
    a, _ = await connected(hub, 1)
    b, _ = await connected(hub, 2)
    if kind == "room.leave":
        await hub.join(a, "room:z")
        await hub.join(b, "room:z")
    await hub.dispatch({"type": kind, "room": "room:z", "user_ids": [1]})
    in_room = {s.user_id for s in hub.rooms.get("room:z", ())}
    assert in_room == ({1} if kind == "room.enter" else {2})
