"""Channel messages posted while a member was away reach it on reconnect, in order,
on the other instance (real server processes, the real Redis)."""

import asyncio

import pytest

from testing.clients import RealSocket, SocketClient
from testing.cluster import http_post
from testing.factories import token_for
from testing.recovery import Positions

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


async def _join(client, positions: Positions) -> list[dict]:
    """user-join, recording the frames until its ack (position, recovery, replays)."""
    ack = client.new_ack()
    await client.send({"event": "user-join", "data": {}, "ack": ack})
    frames = []
    while True:
        frame = await client.recv(5)
        if frame.get("ack") == ack:
            return frames
        positions.see(frame)
        frames.append(frame)


async def test_channel_messages_missed_arrive_on_reconnect_in_order(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    a_token = token_for(alice)
    status, channel = await asyncio.to_thread(
        http_post, f"{one.http}/api/channels/", {"name": "team"}, a_token
    )
    assert status == 201
    cid, room = channel["id"], f"channel:{channel['id']}"
    status, _ = await asyncio.to_thread(
        http_post,
        f"{one.http}/api/channels/{cid}/members/",
        {"user_id": bob.id},
        a_token,
    )
    assert status == 201

    positions = Positions()
    tab = await SocketClient.open(RealSocket(two.ws))
    positions.hello(await tab.connect(bob))
    frames = await _join(tab, positions)
    (start,) = [f["data"] for f in frames if f.get("event") == "position"]
    assert start["room"] == room
    await tab.abort()

    for i in range(5):
        status, _ = await asyncio.to_thread(
            http_post,
            f"{one.http}/api/channels/{cid}/messages/",
            {"content": f"m{i}"},
            a_token,
        )
        assert status == 201

    tab = await SocketClient.open(RealSocket(one.ws))
    positions.hello(await tab.connect(bob, recover=positions.recover()))
    frames = await _join(tab, positions)
    # The room's outcome first, then what was missed, before the join's ack.
    recovery = [f for f in frames if f.get("event") == "recovery"]
    assert [r["data"]["room"] for r in recovery] == [room]
    assert recovery[0]["data"]["recovered"] is True
    assert recovery[0]["data"]["replayed"] == 5
    after = frames[frames.index(recovery[0]) + 1 :]
    contents = [
        f["data"]["data"]["data"]["content"]
        for f in after
        if f.get("event") == "events:channel" and f["data"]["data"]["type"] == "message"
    ]
    assert contents == [f"m{i}" for i in range(5)]
    offsets = [f["offset"] for f in after if f.get("room") == room]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert positions.duplicates == []
    # Live again: the next message comes once.
    await asyncio.to_thread(
        http_post,
        f"{two.http}/api/channels/{cid}/messages/",
        {"content": "live"},
        a_token,
    )
    while True:
        frame = await tab.recv(5)
        if (
            frame.get("event") == "events:channel"
            and frame["data"]["data"]["type"] == "message"
        ):
            assert frame["data"]["data"]["data"]["content"] == "live"
            assert positions.see(frame)
            break
    await tab.close()
