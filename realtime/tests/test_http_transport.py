"""The HTTP transport (docs/protocol.md §10) against two real server processes on the
real Redis: sessions, POSTs landing on either instance, limits and bad input."""

import asyncio
import re
import signal
import urllib.request
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from realtime.http_transport.routes import route_key
from realtime.wire import dumps
from testing.clients import RealSocket, SocketClient
from testing.cluster import MAX_FRAME_BYTES, http_post
from testing.factories import token_for
from testing.http_transport import HttpConnection, RealHttp
from testing.nginx import Nginx

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# The cluster's POST limit (HTTP_POST_MAX_BYTES defaults to MAX_FRAME_BYTES).
MAX_POST = MAX_FRAME_BYTES


async def acks_before_a_call(client, ack: int) -> list[int]:
    """The acks the client reads before the answer to a new call with `ack`: what
    its earlier frames were answered with (events in between are skipped)."""
    await client.send({"event": "user-list", "data": None, "ack": ack})
    acks = []
    while (frame := await client.recv()).get("ack") != ack:
        if "ack" in frame:
            acks.append(frame["ack"])
    assert "data" in frame, frame
    return acks


def connect_frame(user, ack=0) -> str:
    return dumps({"event": "connect", "data": {"token": token_for(user)}, "ack": ack})


async def test_http_socket_and_websocket_share_a_room(cluster, people):
    one, two = cluster
    alice = await SocketClient.open(RealHttp(one.http), people["alice"], join=True)
    bob = await SocketClient.open(RealSocket(two.ws), people["bob"], join=True)
    try:
        ids = (await alice.call("user-list"))["data"]["user_ids"]
        assert ids == sorted([people["alice"].id, people["bob"].id])
        assert alice.transport.opened["keepalive"] > 0
    finally:
        await alice.close()
        await bob.close()


async def test_posts_spread_over_both_instances_keep_their_order(cluster, people):
    one, two = cluster
    # The stream on one (daphne), every other POST landing on two (uvicorn).
    transport = RealHttp(one.http, post_to=[two.http, one.http])
    alice = await SocketClient.open(transport, people["alice"], join=True)
    try:
        for ack in range(1, 61):
            await alice.send({"event": "user-list", "data": None, "ack": ack})
        acks = []
        while len(acks) < 60:
            frame = await alice.recv()
            if "ack" in frame:
                acks.append(frame["ack"])
        assert acks == list(range(1, 61))
    finally:
        await alice.close()


async def test_several_frames_in_one_post_and_a_retried_post(cluster, people):
    one, two = cluster
    transport = RealHttp(one.http, post_to=[two.http])
    alice = await SocketClient.open(transport, people["alice"])
    try:
        frames = [dumps({"event": "user-list", "data": None, "ack": n}) for n in (7, 8)]
        assert await transport.post(frames) == (204, None)
        # The same seq again (a retry after a lost answer): accepted, not run twice.
        assert await transport.post(frames, seq=transport.seq) == (204, None)
        assert await acks_before_a_call(alice, 9) == [7, 8]
        # A seq that skips one is refused, and nothing of it is run.
        status, body = await transport.post(frames, seq=transport.seq + 2)
        assert (status, body["error"]["code"]) == (409, "bad_request")
        assert await acks_before_a_call(alice, 10) == []
        assert (await alice.call("user-list"))["data"]["user_ids"] == [
            people["alice"].id
        ]
    finally:
        await alice.close()


async def test_a_post_for_someone_elses_session_is_forbidden(cluster, people):
    one, two = cluster
    alice_http = RealHttp(one.http)
    bob_http = RealHttp(two.http)
    alice = await SocketClient.open(alice_http, people["alice"])
    bob = await SocketClient.open(bob_http, people["bob"])
    try:
        frame = dumps({"event": "user-join", "data": {}, "ack": 1})
        # Bob's key on alice's sid: the MAC binds the key to bob's session.
        bob_http.sid, bob_sid = alice_http.sid, bob_http.sid
        status, body = await bob_http.post([frame], seq=1)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        # Alice's route with another secret: refused by the instance holding her.
        secret, route = alice_http.key.split(".", 1)
        bob_http.key = "x" + secret[1:] + "." + route
        status, body = await bob_http.post([frame], seq=1)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        status, body = await bob_http.post([frame], seq=1, **{"X-Realtime-Key": ""})
        assert (status, body["error"]["code"]) == (400, "bad_request")
        bob_http.sid = bob_sid
        # None of those frames ran in alice's session, and it works.
        assert await acks_before_a_call(alice, 2) == []
    finally:
        await alice.close()
        await bob.close()


async def test_malformed_and_oversized_posts(cluster, people):
    one, two = cluster
    transport = RealHttp(two.http, post_to=[one.http])
    alice = await SocketClient.open(transport, people["alice"])
    poster = transport.posters[0]
    target = f"/ws/http/{transport.sid}/"
    base = {"X-Realtime-Key": transport.key}

    async def raw(headers, body):
        response = await poster.request("POST", target, headers, body)
        content = await poster.body()
        return response.status_code, content

    try:
        cases = [
            (
                {**base, "X-Realtime-Seq": "1", "Content-Type": "text/plain"},
                b"{}\n",
                415,
            ),
            (
                {**base, "X-Realtime-Seq": "1", "Content-Type": "application/x-ndjson"},
                b"\xff\xfe\n",
                400,
            ),
            (
                {**base, "X-Realtime-Seq": "1", "Content-Type": "application/x-ndjson"},
                b"",
                400,
            ),
            (
                {
                    **base,
                    "X-Realtime-Seq": "one",
                    "Content-Type": "application/x-ndjson",
                },
                b"{}\n",
                400,
            ),
            (
                {**base, "X-Realtime-Seq": "1", "Content-Type": "application/x-ndjson"},
                b"{}\n" * 300,
                400,
            ),
            (
                {**base, "X-Realtime-Seq": "1", "Content-Type": "application/x-ndjson"},
                b"x" * (2 * MAX_POST),
                413,
            ),
        ]
        for headers, body, status in cases:
            got, content = await raw(headers, body)
            assert got == status, (headers, body[:20], content)
        # A frame that is not JSON is answered on the stream, as on /ws/.
        status, _ = await transport.post(["{not json"])
        assert status == 204
        error = await alice.event("error")
        assert error["code"] == "bad_request"
        assert "data" in await alice.call("user-list")
    finally:
        await alice.close()


async def test_missing_or_bad_token_and_foreign_origin(cluster, people):
    one, _ = cluster
    # A stream whose first frame has a bad token: the error, then close 4401.
    transport = RealHttp(one.http)
    bad = dumps({"event": "connect", "data": {"token": "nope"}, "ack": 0})
    assert await transport.open((bad + "\n").encode())
    client = SocketClient(transport)
    assert (await client.recv())["error"]["code"] == "unauthorized"
    assert await client.closed_code() == 4401
    # A POST to the closed session: gone.
    status, body = await transport.post([connect_frame(people["alice"])])
    assert (status, body["error"]["code"]) == (404, "not_found")
    await transport.close()
    # A foreign Origin, on the stream and on a POST.
    foreign = RealHttp(one.http, headers={"Origin": "https://evil.example"})
    assert not await foreign.open()
    assert (foreign.status, foreign.error["error"]["code"]) == (403, "forbidden")
    await foreign.close()
    alice_http = RealHttp(one.http)
    alice = await SocketClient.open(alice_http, people["alice"])
    try:
        alice_http.headers = {"Origin": "https://evil.example"}
        status, body = await alice_http.post([dumps({"event": "user-list"})])
        assert (status, body["error"]["code"]) == (403, "forbidden")
    finally:
        await alice.close()


async def test_connect_in_the_opening_body(cluster, people):
    _, two = cluster
    transport = RealHttp(two.http)
    assert await transport.open((connect_frame(people["alice"], ack=5) + "\n").encode())
    client = SocketClient(transport)
    try:
        hello = await client.recv()
        assert hello["ack"] == 5 and hello["data"]["sid"] == transport.sid
    finally:
        await client.close()


@pytest.mark.cluster_env(HTTP_KEEPALIVE="0.3", OUTBOUND_QUEUE_MAX="3")
async def test_keepalive_comments_on_an_idle_stream(cluster, people):
    one, two = cluster
    for server in (one, two):
        transport = RealHttp(server.http)
        client = await SocketClient.open(transport, people["alice"])
        try:
            kinds = []
            while len(kinds) < 2:
                kinds.append((await asyncio.wait_for(transport._frames.get(), 3))[0])
            assert kinds == ["comment", "comment"]
        finally:
            await client.close()


async def test_behind_nginx_posts_land_on_both_instances_in_order(cluster, people):
    one, two = cluster
    with Nginx([one.port, two.port]) as proxy:
        before = [_posts(server.http) for server in (one, two)]
        alice = await SocketClient.open(RealHttp(proxy.http), people["alice"])
        bob = await SocketClient.open(RealSocket(proxy.ws), people["bob"])
        try:
            for ack in range(1, 41):
                await alice.send({"event": "user-list", "data": None, "ack": ack})
            acks = []
            while len(acks) < 40:
                frame = await alice.recv()
                if "ack" in frame:
                    acks.append(frame["ack"])
            assert acks == list(range(1, 41))
            after = [_posts(server.http) for server in (one, two)]
            # Round robin with no stickiness: both instances took POSTs, one of
            # them forwarded each to the other.
            assert all(
                a["total"] > b["total"] for a, b in zip(after, before, strict=True)
            )
            assert sum(
                a["forwarded"] - b["forwarded"]
                for a, b in zip(after, before, strict=True)
            )
        finally:
            await alice.close()
            await bob.close()


def _posts(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {"local": 0.0, "forwarded": 0.0}
    for route in counts:
        found = re.search(rf'realtime_http_posts_total{{route="{route}"}} (\S+)', text)
        if found:
            counts[route] = float(found.group(1))
    counts["total"] = counts["local"] + counts["forwarded"]
    return counts


@pytest.mark.cluster_env(OUTBOUND_QUEUE_MAX="20")
async def test_a_stream_that_is_not_read_is_closed_as_a_slow_websocket(cluster, people):
    # On uvicorn (instance two): daphne buffers a response in memory without
    # backpressure, so the queue never fills there (docs/protocol.md §10).
    one, two = cluster
    transport = RealHttp(two.http)
    alice = await SocketClient.open(transport, people["alice"], join=True)
    watcher = await SocketClient.open(RealSocket(one.ws), people["bob"], join=True)
    try:
        transport.stop_reading()
        admin = token_for(people["admin"])
        big = "x" * 60_000
        # Far more than TCP's buffers hold, sent until the server gives up on alice.
        for n in range(400):
            status, _ = http_post(
                f"{one.http}/api/realtime/emit/",
                {"user_id": people["alice"].id, "event": "big", "data": [n, big]},
                admin,
            )
            assert status == 202
            ids = (await watcher.call("user-list"))["data"]["user_ids"]
            if people["alice"].id not in ids:
                break
        else:
            pytest.fail("the unread stream was never closed")
    finally:
        await alice.close()
        await watcher.close()


@pytest.mark.cluster_env(FRAME_BURST="5", FRAME_RATE="1")
async def test_the_frame_rate_limit_applies_over_http(cluster, people):
    one, two = cluster
    transport = RealHttp(one.http, post_to=[two.http])
    alice = await SocketClient.open(transport, people["alice"])
    try:
        frames = [dumps({"event": "user-list", "ack": n}) for n in range(1, 9)]
        assert (await transport.post(frames))[0] == 204
        answers = [await alice.recv() for _ in range(8)]
        codes = [a.get("error", {}).get("code") for a in answers]
        assert codes.count("rate_limited") >= 3 and codes[0] is None
        assert [a["ack"] for a in answers] == list(range(1, 9))
    finally:
        await alice.close()


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.mark.cluster_env(ENABLE_WEBSOCKET_SUPPORT="false")
async def test_websocket_support_off_leaves_only_the_http_transport(cluster, people):
    for server in cluster:
        # A raw handshake, closed after its answer as a browser closes a refused one
        # (websockets' client leaves the socket open after a refusal, and uvicorn's
        # shutdown then waits for it).
        handshake = HttpConnection("127.0.0.1", server.port)
        response = await handshake.request("GET", "/ws/", UPGRADE)
        handshake.close()
        assert response.status_code == 403
        alice = await SocketClient.open(RealHttp(server.http), people["alice"])
        try:
            assert "data" in await alice.call("user-list")
        finally:
            await alice.close()


@pytest.mark.parametrize("instance", [0, 1], ids=["daphne", "uvicorn"])
async def test_dropping_the_stream_disconnects_the_session(cluster, people, instance):
    server = cluster[instance]
    transport = RealHttp(server.http)
    alice = await SocketClient.open(transport, people["alice"], join=True)
    watcher = await SocketClient.open(
        RealSocket(cluster[1 - instance].ws), people["bob"]
    )
    try:
        assert (
            people["alice"].id in (await watcher.call("user-list"))["data"]["user_ids"]
        )
        await alice.abort()
        for _ in range(50):
            ids = (await watcher.call("user-list"))["data"]["user_ids"]
            if people["alice"].id not in ids:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("alice is still online after her stream dropped")
        # Her key is now worth nothing: the session is gone.
        fresh = RealHttp(server.http)
        fresh.sid, fresh.key = transport.sid, transport.key
        status, body = await fresh.post([dumps({"event": "user-list"})])
        assert (status, body["error"]["code"]) == (404, "not_found")
        await fresh.close()
    finally:
        await watcher.close()


def _token(user, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def test_token_expiry_and_an_expired_token_over_http(cluster, people):
    one, two = cluster
    # An expired token: refused, and the stream closes with 4401.
    transport = RealHttp(one.http, post_to=[two.http])
    assert await transport.open()
    client = SocketClient(transport)
    expired = {"token": _token(people["alice"], -1)}
    await client.send({"event": "connect", "data": expired, "ack": 0})
    assert (await client.recv())["error"]["code"] == "unauthorized"
    assert await client.closed_code() == 4401
    await transport.close()
    # A token that expires while connected: told why, then closed with 4401.
    transport = RealHttp(two.http, post_to=[one.http])
    assert await transport.open()
    client = SocketClient(transport)
    short = {"token": _token(people["alice"], 2)}
    await client.send({"event": "connect", "data": short, "ack": 0})
    assert "sid" in (await client.recv())["data"]
    assert await client.event("disconnect", timeout=5) == {"reason": "token expired"}
    assert await client.closed_code() == 4401
    await transport.close()


@pytest.mark.cluster_env(HTTP_FORWARD_TIMEOUT="0.5")
async def test_a_post_whose_instance_does_not_answer_is_retried(
    cluster, people, settings
):
    one, two = cluster
    transport = RealHttp(one.http, post_to=[two.http])
    alice = await SocketClient.open(transport, people["alice"])
    try:
        secret, _ = transport.key.split(".", 1)
        good = transport.key
        # A key signed (the test shares the fleet's SECRET_KEY) for a channel that no
        # instance reads: the POST waits HTTP_FORWARD_TIMEOUT, then says retry.
        transport.key = route_key(
            sid=transport.sid, secret=secret, channel="rt-instance.gone!nobody"
        )
        frame = dumps({"event": "user-list", "ack": 3})
        status, body = await transport.post([frame])
        assert (status, body["error"]["code"]) == (503, "timeout")
        # The same seq with the right key: taken once.
        transport.key = good
        assert await transport.post([frame], seq=transport.seq) == (204, None)
        assert await acks_before_a_call(alice, 4) == [3]
    finally:
        await alice.close()


async def test_a_stopping_uvicorn_ends_its_streams_with_1012(cluster, people):
    one, two = cluster
    transport = RealHttp(two.http)
    alice = await SocketClient.open(transport, people["alice"], join=True)
    watcher = await SocketClient.open(RealSocket(one.ws), people["bob"])
    try:
        # uvicorn waits for open responses at shutdown: without the stream's own
        # shutdown it would hang until the launcher's SIGKILL (-9) after 10 s.
        code = await asyncio.to_thread(two.terminate, 5.0)
        assert code != -signal.SIGKILL
        assert await alice.closed_code(timeout=5) == 1012
        # Its lifespan shutdown ran: alice left shared state at once.
        ids = (await watcher.call("user-list"))["data"]["user_ids"]
        assert people["alice"].id not in ids
    finally:
        await alice.close()
        await watcher.close()
