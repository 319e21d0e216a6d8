"""Replay: every channel frame Open WebUI sends (fixtures/openwebui_channel_frames.json)
from an openwebui socket on one server process, and what the other member hears on
the other process, on a realtime and an openwebui socket, in their own shapes; then
the REST actions whose events Open WebUI's front end reads."""

import asyncio
import json
import time
from pathlib import Path

import pytest

from realtime.dialects import OPENWEBUI, REALTIME
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_request
from testing.factories import token_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    pytest.mark.cluster_env(CHANNEL_TYPING_TIMEOUT=1),
]

FIXTURE = Path(__file__).parent / "fixtures" / "openwebui_channel_frames.json"
TYPING_TIMEOUT = 1.0
ENVELOPE_KEYS = {"channel_id", "message_id", "data", "user", "channel", "created_at"}
PLAIN_KEYS = {"channel_id", "message_id", "data", "user"}
CHANNEL_EVENTS = {"events:channel", "channel:created", "channel:mute"}


def fill(value, names: dict):
    """The fixture's value with each "$name" string replaced by its value."""
    if isinstance(value, str) and value.startswith("$") and value[1:] in names:
        return names[value[1:]]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


async def next_channel_frame(client, timeout=5.0) -> dict:
    """The next channel event frame (presence broadcasts and the like skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no channel event in time"
        frame = await client.recv(left)
        if frame.get("event") in CHANNEL_EVENTS:
            return frame


async def no_channel_frame(client, wait=0.5) -> list:
    """Channel events that arrive within `wait` (none expected)."""
    got = []
    try:
        while True:
            frame = await client.recv(wait)
            if frame.get("event") in CHANNEL_EVENTS:
                got.append(frame)
    except TimeoutError:
        return got


async def hears(client, dialect, want: dict, actor_id: int) -> dict:
    """The client's next channel event is `want` ({type, message_id, data?}) in the
    shape of its dialect; returns the event's inner data."""
    frame = await next_channel_frame(client)
    kind = want["type"]
    if dialect == REALTIME and kind in ("channel:created", "channel:mute"):
        assert frame["event"] == kind, frame
        return frame["data"]
    assert frame["event"] == "events:channel", frame
    data = frame["data"]
    assert set(data) == (ENVELOPE_KEYS if dialect == OPENWEBUI else PLAIN_KEYS), data
    assert data["data"]["type"] == kind, (dialect, data)
    if "message_id" in want:
        assert data["message_id"] == want["message_id"], (dialect, data)
    if "data" in want:
        assert data["data"]["data"] == want["data"], (dialect, data)
    assert data["user"]["id"] == actor_id, data
    return data["data"]["data"]


async def test_open_webui_channel_frames_replayed_across_instances(cluster, people):
    one, two = cluster
    alice, bob, admin = people["alice"], people["bob"], people["admin"]
    a_token, b_token = token_for(alice), token_for(bob)

    def rest(server, method, path, body=None, token=a_token):
        data = None if body is None else json.dumps(body).encode()
        if method == "POST" and data is None:
            data = b"{}"
        return asyncio.to_thread(
            http_request, f"{server.http}/api/channels/{path}", token, data, method
        )

    status, channel = await rest(
        one, "POST", "", {"name": "team", "member_ids": [bob.id]}
    )
    assert status == 201
    cid = channel["id"]
    _, other = await rest(two, "POST", "", {"name": "admins"}, token=token_for(admin))
    status, root = await rest(one, "POST", f"{cid}/messages/", {"content": "root"})
    assert status == 201

    sender = await SocketClient.open(RealSocket(one.ws), alice, protocol=OPENWEBUI)
    owui = await SocketClient.open(
        RealSocket(two.ws), bob, join=True, protocol=OPENWEBUI
    )
    plain = await SocketClient.open(RealSocket(two.ws), bob, join=True)
    outsider = await SocketClient.open(
        RealSocket(two.ws), admin, join=True, protocol=OPENWEBUI
    )
    listeners = ((owui, OPENWEBUI), (plain, REALTIME))
    names = {
        "token": a_token,
        "channel_id": cid,
        "thread_id": root["id"],
        "other_channel_id": other["id"],
        "other_sid": owui.sid,
        "other_user_id": bob.id,
    }
    fixture = json.loads(FIXTURE.read_text())
    try:
        # 1. Every frame, as Open WebUI sends it: the documented answer, and what
        # bob hears on the other instance in both dialects.
        for spec in fixture["frames"] + fixture["spoofed_frames"]:
            reply = await sender.call(spec["event"], fill(spec["data"], names))
            assert "error" not in reply, (spec["name"], reply)
            answer = fill(spec["answer"], names)
            if answer == {"last_read_at": "$iso"}:
                assert set(reply["data"]) == {"last_read_at"}, spec["name"]
            else:
                assert reply["data"] == answer, spec["name"]
            sent = time.monotonic()
            for want in fill(spec["others"], names):
                for client, dialect in listeners:
                    await hears(client, dialect, want, alice.id)
            for want in fill(spec.get("after_timeout", []), names):
                for client, dialect in listeners:
                    await hears(client, dialect, want, alice.id)
                assert time.monotonic() - sent >= TYPING_TIMEOUT * 0.8, spec["name"]
        for spec in fixture["bad_frames"]:
            reply = await sender.call(spec["event"], fill(spec["data"], names))
            assert reply["error"]["code"] == spec["error"], spec["name"]
        for client, _ in listeners:
            assert await no_channel_frame(client, 0.3) == []

        # 2. REST on instance one; bob's sockets on instance two hear each change.
        path = f"{cid}/messages/"
        status, posted = await rest(
            one, "POST", path, {"content": "hi", "temp_id": "t1"}
        )
        assert status == 201
        got = await hears(owui, OPENWEBUI, {"type": "message"}, alice.id)
        assert (got["id"], got["temp_id"], got["parent_id"]) == (
            posted["id"],
            "t1",
            None,
        )
        assert await hears(plain, REALTIME, {"type": "message"}, alice.id) == posted

        status, reply = await rest(
            one,
            "POST",
            path,
            {"content": "re", "parent_id": root["id"], "temp_id": "t2"},
        )
        assert status == 201
        for client, dialect in listeners:
            got = await hears(client, dialect, {"type": "message"}, alice.id)
            assert got["parent_id"] == root["id"]
            want = {"type": "message:reply", "message_id": root["id"]}
            assert (await hears(client, dialect, want, alice.id))["reply_count"] == 1

        reactions = f"{path}{posted['id']}/reactions/"
        status, _ = await rest(one, "POST", reactions, {"name": "+1"})
        assert status == 201
        expected = [{"name": "+1", "user_ids": [alice.id], "count": 1}]
        for client, dialect in listeners:
            want = {"type": "message:reaction:add", "message_id": posted["id"]}
            got = await hears(client, dialect, want, alice.id)
            assert (got["name"], got["reactions"]) == ("+1", expected)
        status, _ = await rest(one, "DELETE", f"{reactions}%2B1/")
        assert status == 204
        for client, dialect in listeners:
            want = {"type": "message:reaction:remove", "message_id": posted["id"]}
            assert (await hears(client, dialect, want, alice.id))["reactions"] == []

        status, _ = await rest(one, "POST", f"{cid}/mute/", token=b_token)
        assert status == 200
        got = await hears(owui, OPENWEBUI, {"type": "channel:mute"}, bob.id)
        assert got == {"is_channel_muted": True}
        got = await hears(plain, REALTIME, {"type": "channel:mute"}, bob.id)
        assert got == {"channel_id": cid, "is_channel_muted": True}

        body = {"name": "second", "member_ids": [bob.id]}
        status, made = await rest(one, "POST", "", body)
        assert status == 201
        for client, dialect in listeners:
            got = await hears(client, dialect, {"type": "channel:created"}, alice.id)
            assert got["id"] == made["id"]

        # Nothing else reached bob, and nothing reached a user of neither channel.
        for client, _ in listeners:
            assert await no_channel_frame(client, 0.3) == []
        assert await no_channel_frame(outsider, 0.1) == []
    finally:
        for client in (sender, owui, plain, outsider):
            await client.close()
