"""The outbox on its own: room messages reach the instances routed for the room,
this process's own hub in place, batched and in order."""

import asyncio
import json

from channels.layers import get_channel_layer

from realtime.hub import get_hub
from realtime.outbox import get_outbox
from realtime.session import Session
from realtime.state import get_state


def room_emit(room: str, n: int) -> dict:
    return {"type": "room.emit", "room": room, "frame": json.dumps({"n": n})}


async def test_messages_for_this_instance_are_dispatched_in_place(backend):
    hub = await get_hub()
    got: list[str] = []

    async def send(text: str) -> None:
        got.append(text)

    async def close(code: int) -> None:
        pass

    session = Session(send=send, close=close)
    session.user_id = 1
    session.start()
    await hub.register(session)
    await hub.join(session, "room:a")
    await asyncio.gather(
        *(get_outbox().send("room:a", room_emit("room:a", i)) for i in range(20))
    )
    for _ in range(10):
        await asyncio.sleep(0)
    assert [json.loads(f)["n"] for f in got] == list(range(20))


async def test_other_instances_get_one_batch_each_in_order(backend):
    await get_hub()
    layer = get_channel_layer()
    state = get_state()
    other = await layer.new_channel(prefix="rt-instance.")
    await state.instance_refresh(instance_id="other", channel=other, ttl=30)
    await state.route_add(room="room:b", channel=other, instance_id="other")
    await asyncio.gather(
        *(get_outbox().send("room:b", room_emit("room:b", i)) for i in range(50)),
        get_outbox().send("room:none", room_emit("room:none", 0)),  # routed nowhere
    )
    batches = []
    while sum(len(b["items"]) for b in batches) < 50:
        batches.append(await asyncio.wait_for(layer.receive(other), 2))
    items = [item for batch in batches for item in batch["items"]]
    assert [json.loads(i["frame"])["n"] for i in items] == list(range(50))
    assert all(b["type"] == "batch" for b in batches) and len(batches) <= 10
