"""Each instance hands a room's events out in offset order (hub/ordering.py)."""

import asyncio

import pytest

from realtime import metrics, wire
from realtime.history import Position, place, record_of
from realtime.hub.ordering import Ordering
from realtime.state import MemoryState

ROOM = "user:1"


class Host(Ordering):
    """An Ordering with a store, recording what it hands out."""

    def __init__(self, state) -> None:
        self.state = state
        self._ordering_init()
        self.out: list[int] = []
        self.tasks: set = set()

    def _deliver_ordered(self, message: dict) -> None:
        self.out.append(message["offset"])

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)


def emitted(n: int) -> dict:
    return {
        "type": "room.emit",
        "room": ROOM,
        "frame": wire.event_frame("tick", n),
        "event": "tick",
    }


async def published(state, count: int) -> list[dict]:
    """`count` messages stored in the room's window, with their positions."""
    messages = [emitted(i) for i in range(count)]
    positions, _ = await state.history_publish(
        appends=[(ROOM, record_of(m)) for m in messages], rooms=[ROOM]
    )
    for message, (epoch, offset) in zip(messages, positions, strict=True):
        place(message, Position(ROOM, epoch, offset))
    return messages


async def test_events_out_of_order_are_handed_out_in_order_once():
    state = MemoryState()
    host = Host(state)
    messages = await published(state, 5)
    epoch = messages[0]["epoch"]
    host.order_start(ROOM, epoch, 0)
    before = metrics.HISTORY_DUPLICATES._value.get()
    for index in (0, 2, 1, 4, 2, 3, 0):
        host.in_order(messages[index])
    assert host.out == [1, 2, 3, 4, 5]
    assert metrics.HISTORY_DUPLICATES._value.get() - before == 2
    assert host.room_position(ROOM) == (epoch, 5)


async def test_an_event_that_never_comes_is_read_from_the_window(settings):
    settings.HISTORY_GAP_WAIT = 0.05
    state = MemoryState()
    host = Host(state)
    messages = await published(state, 3)
    host.order_start(ROOM, messages[0]["epoch"], 0)
    host.in_order(messages[0])
    host.in_order(messages[2])  # 2 was stored but its sender died before sending
    assert host.out == [1]
    await asyncio.sleep(0.2)
    assert host.out == [1, 2, 3]


async def test_an_event_the_window_lost_is_skipped_not_waited_for(settings):
    settings.HISTORY_GAP_WAIT = 0.05
    settings.HISTORY_SIZE = 1
    state = MemoryState()
    host = Host(state)
    messages = await published(state, 3)  # the window keeps only offset 3
    host.order_start(ROOM, messages[0]["epoch"], 0)
    lost = metrics.HISTORY_GAPS_LOST._value.get()
    host.in_order(messages[2])
    await asyncio.sleep(0.2)
    assert host.out == [3]
    assert metrics.HISTORY_GAPS_LOST._value.get() - lost == 2
    host.in_order(messages[1])  # a straggler after the skip is a duplicate
    assert host.out == [3]


async def test_a_new_route_starts_at_the_rooms_position():
    state = MemoryState()
    host = Host(state)
    messages = await published(state, 4)
    # Routed after offset 2: events up to it were not for this instance.
    host.order_start(ROOM, messages[0]["epoch"], 2)
    for message in messages:
        host.in_order(message)
    assert host.out == [3, 4]


async def test_a_new_epoch_starts_the_room_again():
    state = MemoryState()
    host = Host(state)
    old = await published(state, 2)
    host.order_start(ROOM, old[0]["epoch"], 0)
    host.in_order(old[0])
    host.in_order(old[1])
    state.history.clear()  # the history was lost
    new = await published(state, 1)
    assert new[0]["epoch"] != old[0]["epoch"]
    host.in_order(new[0])
    assert host.out == [1, 2, 1]


@pytest.fixture(autouse=True)
def _memory(settings):
    settings.REDIS_URL = ""


async def test_the_memory_store_sweeps_rooms_that_went_quiet(settings, monkeypatch):
    from realtime.state.memory import history as memory_history

    monkeypatch.setattr(memory_history, "SWEEP_EVERY", 3)
    settings.HISTORY_TTL = 0.05
    settings.HISTORY_META_TTL = 0.5
    state = MemoryState()
    await state.history_publish(appends=[("user:quiet", "r")], rooms=[])
    await asyncio.sleep(0.4)
    await state.history_publish(appends=[("user:busy", "r")] * 2, rooms=[])
    # Swept: the quiet room's event expired; its epoch and offset are kept...
    assert list(state.history["user:quiet"].items) == []
    assert state.history["user:quiet"].offset == 1
    await asyncio.sleep(0.2)
    await state.history_publish(appends=[("user:busy", "r")] * 3, rooms=[])
    # ...until HISTORY_META_TTL passed too.
    assert "user:quiet" not in state.history
    assert state.history["user:busy"].offset == 5
