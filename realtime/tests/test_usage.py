"""Model usage: marks, the coalesced `usage` broadcast, expiry and disconnect removal.

In one process on both stores; across two server processes at the end."""

import asyncio
import time
import urllib.error
import urllib.request

import pytest

from testing.clients import RealSocket, SocketClient
from testing.factories import users_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_usage(settings):
    settings.USAGE_INTERVAL = 0.4
    settings.USAGE_TTL = 30.0
    return settings


async def test_usage_ask_and_bad_payload(backend, fast_usage, ws):
    alice, bob = await users_create("alice", "bob")
    a = await ws(alice, join=True)
    b = await ws(bob, join=True)
    assert (await a.call("usage", {}))["data"] == {"models": []}
    assert (await a.call("usage", {"model": "llama3", "chat_id": "c1"}))["data"] is None
    assert (await b.call("usage"))["data"] == {"models": ["llama3"]}
    reply = await a.call("usage", {"model": 3})
    assert reply["error"]["code"] == "bad_request"
    reply = await a.call("usage", {"model": ""})
    assert reply["error"]["code"] == "bad_request"
    reply = await a.call("usage", {"model": "x", "user_id": 9})
    assert reply["error"]["code"] == "bad_request"


async def test_usage_broadcast_is_coalesced_and_only_on_change(backend, fast_usage, ws):
    alice, bob = await users_create("alice", "bob")
    a = await ws(alice, join=True)
    watcher = await ws(bob, join=True)
    # Five models within a few milliseconds: at most one broadcast per interval.
    for i in range(5):
        await a.send({"event": "usage", "data": {"model": f"m{i}"}})
    seen: list[tuple[float, list]] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if await watcher.nothing(0.05):
            continue
        frame = await watcher.recv()
        if frame.get("event") == "usage":
            seen.append((time.monotonic(), frame["data"]["models"]))
    assert seen, "no usage broadcast"
    assert seen[-1][1] == [f"m{i}" for i in range(5)]
    assert len(seen) <= 2, seen
    gaps = [
        later[0] - earlier[0] for earlier, later in zip(seen, seen[1:], strict=False)
    ]
    assert all(gap >= 0.4 * 0.8 for gap in gaps), gaps
    # Repeating marks of models already in use changes nothing: no broadcast.
    for _ in range(3):
        await a.send({"event": "usage", "data": {"model": "m1"}})
    assert await watcher.nothing(1.0)
    # The session disconnecting removes its marks at once (TTL is 30 s here).
    await a.close()
    assert await watcher.event("usage", timeout=2) == {"models": []}


@pytest.mark.cluster
@pytest.mark.cluster_env(
    USAGE_TTL=1.5, USAGE_INTERVAL=0.3, METRICS_TOKEN="m-token", METRICS_ALLOWED_IPS=""
)
async def test_usage_expires_and_leaves_with_the_session_across_processes(
    cluster, people
):
    one, two = cluster
    alice = await SocketClient.open(RealSocket(one.ws), people["alice"], join=True)
    watcher = await SocketClient.open(RealSocket(two.ws), people["bob"], join=True)
    try:
        # A mark on instance one is seen by a client of instance two.
        await alice.call("usage", {"model": "gpt-x"})
        marked = time.monotonic()
        assert await _next_usage(watcher) == ["gpt-x"]
        assert (await watcher.call("usage"))["data"] == {"models": ["gpt-x"]}
        # No repeat: the mark lapses USAGE_TTL after the last one.
        assert await _next_usage(watcher, timeout=4) == []
        lapsed = time.monotonic() - marked
        assert 1.5 <= lapsed <= 1.5 + 1.5, lapsed
        # Marked again, then the socket closes: gone well before the TTL.
        await alice.call("usage", {"model": "gpt-y"})
        assert await _next_usage(watcher) == ["gpt-y"]
        await alice.call("usage", {"model": "gpt-y"})  # would last 1.5 s more
        await alice.close()
        closed = time.monotonic()
        assert await _next_usage(watcher, timeout=3) == []
        assert time.monotonic() - closed < 1.0
        # The server's /metrics counted those events; the token is required.
        assert _metrics(one.http, "wrong") is None
        text = _metrics(one.http, "m-token")
        assert 'realtime_events_in_total{event="usage"} 3.0' in text
        assert "realtime_worker_leader " in text
    finally:
        await alice.close()
        await watcher.close()


def _metrics(base: str, token: str) -> str | None:
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as err:
        assert err.code == 403
        return None


async def _next_usage(client, timeout=3.0) -> list:
    return (await asyncio.wait_for(client.event("usage", timeout), timeout))["models"]
