"""The HTTP fallback (issue 17) in Chromium. Behind a real nginx in front of two
instances: while nginx refuses the WebSocket Upgrade, the demo chat and channels
pages work over HTTP (their POSTs land on either instance); once nginx allows it
again and reloads, the pages reconnect and end on a WebSocket. And Open WebUI's io()
call with its polling switch on, against a server with ENABLE_WEBSOCKET_SUPPORT off."""

import pytest
from playwright.async_api import expect

from realtime.tests.test_browser import (  # noqa: F401
    WAIT_MS,
    Tab,
    browser,
    login,
    server_start,
)
from realtime.tests.test_browser_adapter import connects, open_page
from testing.cluster import http_get, http_post
from testing.factories import token_for
from testing.nginx import Nginx

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What Chromium logs, as console errors, for a refused Upgrade (nginx's 403) and for
# the event streams that the reload of nginx cuts.
REFUSED_UPGRADE = r"console: WebSocket connection to .* failed"
CUT_STREAM = r"console: Failed to load resource: net::ERR_"


@pytest.fixture
def proxy(cluster):
    """nginx refusing the WebSocket Upgrade in front of both instances."""
    with Nginx([server.port for server in cluster], refuse_upgrade=True) as nginx:
        yield nginx


async def transport_of(tab: Tab, name: str) -> None:
    """Wait until the page's socket is connected over transport `name`."""
    await tab.page.wait_for_function(
        "name => window.realtimeSocket?.connected &&"
        " window.realtimeSocket.io.engine.transport.name === name",
        arg=name,
        timeout=WAIT_MS,
    )


async def ask(tab: Tab, tokens: int) -> None:
    """Ask the chat page for an answer of `tokens` words; wait until it is done and
    shows what the server stored."""
    answers = tab.page.locator("article.assistant")
    before = await answers.count()
    await tab.page.fill("#prompt", "Over which transport?")
    await tab.page.fill("input[name=tokens]", str(tokens))
    await tab.page.fill("input[name=tps]", "50")
    await tab.page.click("#send")
    await expect(answers).to_have_count(before + 1, timeout=WAIT_MS)
    answer = answers.last
    await expect(answer).to_have_attribute("data-done", "true", timeout=WAIT_MS)
    assert len((await answer.locator(".content").inner_text()).split()) == tokens


async def talk(a: Tab, b: Tab, bob, text: str) -> None:
    """Bob types (his socket's emit): Alice sees it; Alice sends a message: Bob's page
    gets it live."""
    await b.page.locator("#text").press_sequentially("hi", delay=20)
    await expect(a.page.locator("#typing")).to_have_text(
        "Bob is typing…", timeout=WAIT_MS
    )
    await b.page.fill("#text", "")
    await a.page.fill("#text", text)
    await a.page.press("#text", "Enter")
    message = b.page.locator("#messages [data-channel-message]").last
    await expect(message).to_contain_text(text, timeout=WAIT_MS)


@pytest.mark.cluster
async def test_pages_work_over_http_then_return_to_websocket(
    browser,  # noqa: F811
    proxy,
    people,
):
    alice, bob = people["alice"], people["bob"]
    _, general = http_post(
        f"{proxy.http}/api/channels/",
        {"name": "general", "member_ids": [bob.id]},
        token_for(alice),
    )
    channel = f"{proxy.http}/channels/#channel={general['id']}"
    chat = await (await login(browser, proxy.http, alice)).open(f"{proxy.http}/chat/")
    a = await Tab(await chat.page.context.new_page()).open(channel)
    b = await (await login(browser, proxy.http, bob)).open(channel)
    tabs = (chat, a, b)

    # The Upgrade is refused: every page is on the HTTP fallback, and works.
    for tab in tabs:
        await transport_of(tab, "http")
    await ask(chat, 30)
    await talk(a, b, bob, "over http")
    chat_id = chat.page.url.split("#chat=")[1]
    _, stored = http_get(f"{proxy.http}/api/chats/{chat_id}/", token_for(alice))
    assert stored["messages"][-1]["done"] is True
    await chat.shot("chat-over-http")

    # nginx allows the Upgrade again; its reload cuts the old streams within a
    # second, and each page's reconnect tries the WebSocket first.
    proxy.set_refuse_upgrade(False)
    for tab in tabs:
        await transport_of(tab, "websocket")
        connects = await tab.page.locator("#conn").get_attribute("data-connects")
        assert int(connects) >= 2, connects
    await ask(chat, 20)
    await talk(a, b, bob, "over a websocket")
    for tab in tabs:
        tab.assert_no_errors(REFUSED_UPGRADE, CUT_STREAM)


@pytest.fixture
def server_without_websockets(settings, request):
    """One uvicorn instance that refuses every WebSocket handshake."""
    process = server_start(settings, request, ENABLE_WEBSOCKET_SUPPORT="false")
    yield process
    process.terminate()


async def test_open_webuis_polling_switch_connects_over_http(
    browser,  # noqa: F811
    server_without_websockets,
    people,
):
    """Open WebUI with ENABLE_WEBSOCKET_SUPPORT off asks for ['polling', 'websocket']:
    the WebSocket is refused, the adapter goes on over HTTP at /ws/http/ (also for
    the socket.io path), and socket.io acks work there."""
    server, alice = server_without_websockets, people["alice"]
    tab, _, _, warnings = await open_page(browser, server.http, token_for(alice))
    page = tab.page
    seen = await connects(tab, 1)
    assert seen[0][1] == await page.evaluate("socket.id")
    assert await page.evaluate("socket.io.engine.transport.name") == "http"
    assert await page.evaluate("socket.streamUrl") == f"{server.http}/ws/http/"
    assert await page.evaluate("plainAck('user-join', {auth: {token: 'x'}})") == [
        {"id": alice.id, "name": alice.display_name}
    ]
    assert await page.evaluate(
        "timedVolatile('user-join', {auth: {token: 'x'}}, 10000)"
    ) == [None, {"id": alice.id, "name": alice.display_name}]
    assert warnings == []
    tab.assert_no_errors(REFUSED_UPGRADE)
