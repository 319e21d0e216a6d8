"""The browser adapter in Chromium with Open WebUI's exact io() options and calls
(testing/pages/openwebui-io.html) against a real server: /ws/socket.io, transports
['polling', 'websocket'] on a WebSocket, a server restart, the auth callback read
again, timeout().volatile.emit, socket.io acks, and 'io server disconnect' followed
by the page's connect()."""

import json
from pathlib import Path

import pytest
from playwright.async_api import TimeoutError, expect

from realtime.tests.test_browser import WAIT_MS, Tab, browser, server  # noqa: F401
from testing.cluster import http_post
from testing.factories import token_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE = Path(__file__).resolve().parents[2] / "testing" / "pages" / "openwebui-io.html"


async def open_page(chromium, base: str, token: str) -> tuple[Tab, list, list, list]:
    """The test page on the server's origin; returns it, the WebSocket frames the page
    sent ([url, frame]) and received (frames), and its console warnings."""
    page = await (await chromium.new_context()).new_page()
    tab = Tab(page)
    sent: list = []
    received: list = []
    warnings: list[str] = []
    page.on(
        "console",
        lambda msg: warnings.append(msg.text) if msg.type == "warning" else None,
    )

    def watch(ws) -> None:
        ws.on("framesent", lambda payload: sent.append([ws.url, json.loads(payload)]))
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", watch)
    # Written into a page the server served: Chromium lets a document reach
    # 127.0.0.1 only when it came from a local address itself.
    await page.goto(f"{base}/")
    await page.evaluate(
        "t => { localStorage.token = t; localStorage.websocket = 'false'; }", token
    )
    await page.set_content(PAGE.read_text(), wait_until="domcontentloaded")
    await expect(page.locator("body")).to_have_attribute(
        "data-ready", "true", timeout=WAIT_MS
    )
    return tab, sent, received, warnings


async def connects(tab: Tab, n: int) -> list:
    """Wait for the page's n-th connect; returns what it has seen."""
    try:
        await tab.page.wait_for_function(
            "n => window.seen.filter(e => e[0] === 'connect').length >= n",
            arg=n,
            timeout=WAIT_MS,
        )
    except TimeoutError as timeout:
        seen = await tab.page.evaluate("window.seen")
        raise AssertionError(f"no connect {n}: {seen} {tab.errors}") from timeout
    return await tab.page.evaluate("window.seen")


def connect_frames(sent: list) -> list[dict]:
    return [frame["data"] for _, frame in sent if frame.get("event") == "connect"]


async def test_open_webuis_io_call_connects_reconnects_and_obeys_the_server(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice, admin = people["alice"], people["admin"]
    first = token_for(alice)
    tab, sent, received, warnings = await open_page(browser, server.http, first)
    page = tab.page

    # Connected at /ws/socket.io/ in the openwebui dialect; transports with
    # 'polling' tried the WebSocket first, and it works.
    seen = await connects(tab, 1)
    assert sent[0][0] == f"ws://127.0.0.1:{server.port}/ws/socket.io/"
    assert connect_frames(sent)[0] == {"token": first, "protocol": "openwebui"}
    sid = seen[0][1]
    hello = next(f for f in received if f.get("ack") == 0)
    assert sid == hello["data"]["sid"] == await page.evaluate("socket.id")
    assert hello["data"]["protocol"] == "openwebui"
    assert await page.evaluate("socket.io.engine.transport.name") == "websocket"

    # socket.io acks: the value alone; null for an error reply. timeout().volatile:
    # error-first, and a timeout when nothing answers.
    assert await page.evaluate("plainAck('user-join', {auth: {token: 'x'}})") == [
        {"id": alice.id, "name": alice.display_name}
    ]
    assert await page.evaluate("plainAck('user-join', {nope: 1})") == [None]
    assert await page.evaluate(
        "timedVolatile('user-join', {auth: {token: 'x'}}, 10000)"
    ) == [None, {"id": alice.id, "name": alice.display_name}]

    # The server restarts; meanwhile the page's token changes and it makes a
    # volatile emit, which is dropped (and times out) instead of being buffered.
    server.terminate()
    await page.wait_for_function(
        "window.seen.some(e => e[0] === 'disconnect')", timeout=WAIT_MS
    )
    fresh = token_for(alice)  # another token (a new jti) the auth callback must read
    assert fresh != first
    await page.evaluate(f"localStorage.token = {json.dumps(fresh)}")
    assert await page.evaluate("timedVolatile('volatile-probe', {}, 300)") == [
        "timeout",
        None,
    ]
    server.start()
    seen = await connects(tab, 2)
    assert ["disconnect", "transport close"] in [e[:2] for e in seen]
    assert connect_frames(sent)[-1]["token"] == fresh
    after_restart = len(sent)

    # The server disconnects the user on purpose: 'io server disconnect', no
    # reconnect by the adapter, then the page's connect() (Open WebUI's reaction).
    status, _ = http_post(
        f"{server.http}/api/users/{alice.id}/disconnect/", None, token_for(admin)
    )
    assert status == 202
    seen = await connects(tab, 3)
    assert ["disconnect", "io server disconnect", "disconnected by an admin"] in seen
    assert seen[-1][1] != sid and await page.evaluate("socket.connected")
    # The dropped volatile emit was never sent, on any socket.
    assert not [f for _, f in sent if f.get("event") == "volatile-probe"]
    assert len(connect_frames(sent[after_restart:])) == 1
    # 'polling' is a transport now: nothing to warn about.
    assert not [w for w in warnings if "polling" in w], warnings
    await tab.shot("openwebui-io")
    # Chromium logs each refused connection while the server was down: the
    # WebSocket's, and the HTTP fallback's that each attempt tried next.
    tab.assert_no_errors(
        r"console: WebSocket connection to .* failed",
        r"console: Failed to load resource: net::ERR_CONNECTION_REFUSED",
    )
