"""The demo pages and the JS adapter in a real browser (Debian's headless Chromium)
against real server processes: two users, two editors, a second tab, a server restart
in the middle of a stream. Screenshots go to test-artifacts/."""

import asyncio
import re
import time
from itertools import zip_longest
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from realtime.launcher import ServerProcess, free_port
from testing.cluster import ARTIFACTS, database_env, http_get, http_post
from testing.factories import token_for
from testing.services import CHROMIUM, REQUIRE_SERVICES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
YJS_BUNDLE = ROOT / "realtime" / "static" / "realtime" / "vendor" / "yjs.js"
# Long enough for a loaded CI machine, short enough to fail fast when broken.
WAIT_MS = 15_000


def need_yjs_bundle() -> None:
    """Skip (fail, when services are required) a test of a page that needs Yjs."""
    if not YJS_BUNDLE.exists():
        message = f"no Yjs bundle at {YJS_BUNDLE} (scripts/js.sh builds it)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def browser():
    """A headless Chromium (async API: the suite's tests share pytest-asyncio's loop,
    which playwright's sync API would take over)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        yield browser
        await browser.close()


def server_start(settings, request, **env: str) -> ServerProcess:
    """One uvicorn instance on the test database (embedded default: in-memory layer)
    with `env` on top, its log in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{request.node.name}-server.log"
    log.unlink(missing_ok=True)
    process = ServerProcess(
        port=free_port(),
        env={"SECRET_KEY": settings.SECRET_KEY, **env, **database_env()},
        server="uvicorn",
        log_path=log,
    )
    return process.start()


@pytest.fixture
def server(settings, request):
    """One uvicorn instance on the test database."""
    process = server_start(settings, request, PRESENCE_INTERVAL="0.3")
    yield process
    process.terminate()


class Tab:
    """A page that records JavaScript errors; tests assert there were none."""

    def __init__(self, page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        # A page must not ask for anything that is not there (e.g. /favicon.ico).
        page.on(
            "response",
            lambda r: (
                self.errors.append(f"response: {r.status} {r.url}")
                if r.status == 404
                else None
            ),
        )

    async def open(self, url: str) -> "Tab":
        """Load a demo page and wait until its script is ready and connected."""
        await self.page.goto(url)
        await expect(self.page.locator("body")).to_have_attribute(
            "data-ready", "true", timeout=WAIT_MS
        )
        await expect(self.page.locator("#conn")).to_have_attribute(
            "data-state", "connected", timeout=WAIT_MS
        )
        return self

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"))

    def assert_no_errors(self, *allowed: str) -> None:
        """No JavaScript errors, except console lines matching an allowed pattern."""
        assert [
            e for e in self.errors if not any(re.search(p, e) for p in allowed)
        ] == []


async def login(browser, base: str, user, password: str | None = None) -> Tab:
    """A new browser context logged in through the index page's form."""
    tab = Tab(await (await browser.new_context()).new_page())
    await tab.page.goto(base + "/")
    await tab.page.fill("input[name=username]", user.username)
    await tab.page.fill("input[name=password]", password or f"{user.username}-pass")
    await tab.page.click("#login button[type=submit]")
    await tab.page.wait_for_url(re.compile(r".*/chat/.*"), timeout=WAIT_MS)
    return tab


async def test_two_users_see_each_others_message_typing_and_presence(
    browser, server, people
):
    alice, bob = people["alice"], people["bob"]
    token = token_for(alice)
    _, general = http_post(
        f"{server.http}/api/channels/",
        {"name": "general", "member_ids": [bob.id]},
        token,
    )
    _, random = http_post(
        f"{server.http}/api/channels/",
        {"name": "random", "member_ids": [bob.id]},
        token,
    )
    a = await (await login(browser, server.http, alice)).open(
        f"{server.http}/channels/#channel={general['id']}"
    )
    b = await (await login(browser, server.http, bob)).open(
        f"{server.http}/channels/#channel={general['id']}"
    )

    # Who is online: each sees the other.
    await expect(a.page.locator(f"#online [data-user-id='{bob.id}']")).to_be_visible(
        timeout=WAIT_MS
    )
    await expect(b.page.locator(f"#online [data-user-id='{alice.id}']")).to_be_visible(
        timeout=WAIT_MS
    )

    # Bob types: Alice sees the indicator.
    await b.page.locator("#text").press_sequentially("hi Al", delay=20)
    await expect(a.page.locator("#typing")).to_have_text(
        "Bob is typing…", timeout=WAIT_MS
    )
    # Alice sends: Bob sees the message live, with her name.
    await a.page.fill("#text", "hello from alice")
    await a.page.press("#text", "Enter")
    message = b.page.locator("#messages [data-channel-message]").last
    await expect(message).to_contain_text("hello from alice", timeout=WAIT_MS)
    await expect(message.locator(".author")).to_have_text("Alice")

    # A message in the channel Bob is not looking at: his unread count goes up.
    http_post(
        f"{server.http}/api/channels/{random['id']}/messages/",
        {"content": "elsewhere"},
        token,
    )
    badge = b.page.locator(f"#channels [data-channel-id='{random['id']}'] .unread")
    await expect(badge).to_have_text("1", timeout=WAIT_MS)

    await b.shot("channels")
    a.assert_no_errors()
    b.assert_no_errors()


async def test_a_tab_that_connected_before_its_listeners_lists_who_is_online(
    browser, server, people
):
    """The channels page opens its socket, then awaits the user names. A socket that
    connected in that time fired `connect` before the page listened: its list of who
    is online must still be asked for. Bob's second tab changes nobody's presence,
    so no broadcast would come to fill it in."""
    alice, bob = people["alice"], people["bob"]
    _, general = http_post(
        f"{server.http}/api/channels/",
        {"name": "general", "member_ids": [bob.id]},
        token_for(alice),
    )
    url = f"{server.http}/channels/#channel={general['id']}"
    await (await login(browser, server.http, alice)).open(url)
    first = await (await login(browser, server.http, bob)).open(url)
    await expect(
        first.page.locator(f"#online [data-user-id='{alice.id}']")
    ).to_be_visible(timeout=WAIT_MS)

    second = await login(browser, server.http, bob)

    async def slow_names(route):
        await asyncio.sleep(2)  # the socket connects meanwhile
        await route.continue_()

    await second.page.route("**/api/users/", slow_names)
    await second.open(url)
    for user in (alice, bob):
        await expect(
            second.page.locator(f"#online [data-user-id='{user.id}']")
        ).to_be_visible(timeout=WAIT_MS)
    second.assert_no_errors()


async def test_two_editors_converge_and_see_each_others_cursor(browser, server, people):
    need_yjs_bundle()
    alice, bob = people["alice"], people["bob"]
    token = token_for(alice)
    _, note = http_post(
        f"{server.http}/api/notes/", {"title": "Plan", "content": "middle"}, token
    )
    status, _ = http_post(
        f"{server.http}/api/notes/{note['id']}/share/",
        {"user_id": bob.id, "permission": "write"},
        token,
    )
    assert status == 200
    url = f"{server.http}/notes/#note={note['id']}"
    a = await (await login(browser, server.http, alice)).open(url)
    b = await (await login(browser, server.http, bob)).open(url)
    for tab in (a, b):
        await expect(tab.page.locator("body")).to_have_attribute(
            "data-synced", "true", timeout=WAIT_MS
        )
        await expect(tab.page.locator("#editor")).to_have_value(
            "middle", timeout=WAIT_MS
        )

    # Both type at once: Alice at the end, Bob at the start.
    await a.page.click("#editor")
    await a.page.keyboard.press("End")
    await b.page.click("#editor")
    await b.page.keyboard.press("Home")
    for left, right in zip_longest(" and an end", "A start and ", fillvalue=""):
        await a.page.keyboard.type(left)
        await b.page.keyboard.type(right)
    await a.page.keyboard.type("!")
    want = "A start and middle and an end!"
    await expect(a.page.locator("#editor")).to_have_value(want, timeout=WAIT_MS)
    await expect(b.page.locator("#editor")).to_have_value(want, timeout=WAIT_MS)

    # Awareness: Bob's cursor, after "A start and ", is drawn on Alice's page.
    await expect(a.page.locator("#editors [data-user='Bob']")).to_contain_text(
        "at 12", timeout=WAIT_MS
    )
    await expect(a.page.locator("#cursors .caret[data-user='Bob']")).to_be_visible()
    await expect(b.page.locator("#cursors .caret[data-user='Alice']")).to_be_visible()

    # Bob selects "A start": Alice sees it in Bob's colour, translucent (not the
    # default yellow of an invalid colour).
    await b.page.keyboard.press("Home")
    for _ in range(7):
        await b.page.keyboard.press("Shift+ArrowRight")
    selection = a.page.locator("#cursors mark[data-user='Bob']")
    await expect(selection).to_have_text("A start", timeout=WAIT_MS)
    caret = a.page.locator("#cursors .caret[data-user='Bob']")
    bob_rgb = await caret.evaluate("n => getComputedStyle(n).borderLeftColor")
    mark_bg = await selection.evaluate("n => getComputedStyle(n).backgroundColor")
    assert mark_bg == bob_rgb.replace("rgb(", "rgba(").replace(")", ", 0.2)")

    # The server's copy converged too (the note's content follows within 0.5 s).
    deadline = time.monotonic() + 10
    while True:
        _, stored = http_get(f"{server.http}/api/notes/{note['id']}/", token)
        if stored["content"] == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stored["content"] == want
    await a.shot("notes")

    # Alice makes Bob a reader with the share form: a notice, not an error; his page
    # hears note:access, joins again, read-only.
    await a.page.select_option("#share-user", str(bob.id))
    await a.page.select_option("#share select[name=permission]", "read")
    await a.page.click("#share button[type=submit]")
    await expect(a.page.locator("#log")).to_have_text("Shared.", timeout=WAIT_MS)
    await expect(a.page.locator("#log")).to_have_class("notice")
    await expect(b.page.locator("#editor")).to_have_attribute(
        "readonly", "", timeout=WAIT_MS
    )
    await a.page.click("#editor")  # the share form had the focus
    await a.page.keyboard.press("End")
    await a.page.keyboard.type("?")
    await expect(b.page.locator("#editor")).to_have_value(want + "?", timeout=WAIT_MS)
    a.assert_no_errors()
    b.assert_no_errors()


async def test_chat_streams_to_two_tabs_stops_and_usage_is_live(
    browser, server, people
):
    alice = people["alice"]
    index = Tab(await (await browser.new_context()).new_page())
    await index.page.goto(server.http + "/")
    await index.shot("index")
    index.assert_no_errors()

    first = await login(browser, server.http, alice)
    await first.open(first.page.url)
    second = await Tab(await first.page.context.new_page()).open(first.page.url)

    await first.page.fill("#prompt", "What is streaming?")
    await first.page.fill("input[name=tokens]", "40")
    await first.page.fill("input[name=tps]", "40")
    await first.page.click("#send")
    chat_id = first.page.url.split("#chat=")[1]
    for tab in (first, second):
        answer = tab.page.locator("article.assistant")
        await expect(answer).to_have_attribute("data-done", "true", timeout=WAIT_MS)
        await expect(answer.locator(".sources")).to_contain_text("Fake encyclopedia")
        await expect(answer.locator(".status")).to_contain_text("generating ✓")
    _, chat = http_get(f"{server.http}/api/chats/{chat_id}/", token_for(alice))
    stored = chat["messages"][-1]
    assert stored["done"] and len(stored["content"].split()) == 40
    for tab in (first, second):
        text = await tab.page.locator("article.assistant .content").inner_text()
        assert text == stored["content"]
        # Both tabs show the same conversation: the prompt too, not only the answer.
        prompt = tab.page.locator("article.user .content")
        await expect(prompt).to_have_text("What is streaming?")
    await first.shot("chat")

    # A long answer, stopped from the second tab.
    await first.page.fill("#prompt", "Tell me everything")
    await first.page.fill("input[name=tokens]", "2000")
    await first.page.fill("input[name=tps]", "20")
    await first.page.click("#send")
    await expect(second.page.locator("article.assistant")).to_have_count(
        2, timeout=WAIT_MS
    )
    roles = second.page.locator("#messages article")
    await expect(roles).to_have_count(4)
    assert [await a.get_attribute("data-role") for a in await roles.all()] == [
        "user",
        "assistant",
    ] * 2
    await expect(roles.nth(2).locator(".content")).to_have_text("Tell me everything")
    await expect(second.page.locator("#stop")).to_be_enabled(timeout=WAIT_MS)
    await second.page.click("#stop")
    for tab in (first, second):
        stopped = tab.page.locator("article.assistant").last
        await expect(stopped).to_have_attribute("data-stopped", "true", timeout=WAIT_MS)
    _, chat = http_get(f"{server.http}/api/chats/{chat_id}/", token_for(alice))
    last = chat["messages"][-1]
    assert (last["state"], last["stop_reason"], last["done"]) == (
        "stopped",
        "user",
        False,
    )
    # After a reload the page still shows that the answer stopped.
    await second.page.reload()
    await expect(second.page.locator("body")).to_have_attribute(
        "data-ready", "true", timeout=WAIT_MS
    )
    stopped = second.page.locator("article.assistant").last
    await expect(stopped).to_have_attribute("data-state", "stopped")
    await expect(stopped).to_have_attribute("data-stopped", "true")
    after = await stopped.locator(".content").evaluate(
        "n => getComputedStyle(n, '::after').content"
    )
    assert after == '" [stopped]"'
    await expect(second.page.locator("#stop")).to_be_disabled()
    await second.shot("chat-stopped-after-reload")

    # Usage: one tab reports a model in use; another user's usage page shows it live,
    # and drops it once the reports stop (USAGE_TTL, 3 s, plus the 1 s coalescing).
    usage = await Tab(await first.page.context.new_page()).open(server.http + "/usage/")
    await expect(usage.page.locator("#usage-status")).to_contain_text(
        "Live", timeout=WAIT_MS
    )
    bob = await login(browser, server.http, people["bob"])
    await bob.open(server.http + "/usage/")
    await bob.page.fill("#model-name", "demo-model")
    await bob.page.check("#use-model")
    model = usage.page.locator("#models [data-model='demo-model']")
    await expect(model).to_be_visible(timeout=WAIT_MS)
    await usage.shot("usage")
    await bob.page.uncheck("#use-model")
    await expect(model).to_have_count(0, timeout=WAIT_MS)
    for tab in (first, second, usage):
        tab.assert_no_errors()


@pytest.mark.cluster
@pytest.mark.cluster_env(ALLOWED_ORIGINS="*")
async def test_stream_survives_a_restart_of_the_sockets_server(
    browser, cluster, people
):
    """A fleet: the page and its REST calls on instance 1, its WebSocket on instance 2
    (?ws=). Instance 2 restarts mid-stream; the generation runs on instance 1, so the
    adapter reconnects, the rest of the stream arrives live, and the page and the
    database end with the whole answer. (A generation whose own instance stops is
    stopped and keeps what it streamed; docs/protocol.md §9.)"""
    pages_server, socket_server = cluster
    alice = people["alice"]
    first = await login(browser, pages_server.http, alice)
    url = f"{pages_server.http}/chat/?ws={socket_server.ws}"
    await first.open(url)
    second = await Tab(await first.page.context.new_page()).open(first.page.url)

    await first.page.fill("input[name=tokens]", "100")
    await first.page.fill("input[name=tps]", "10")
    await first.page.click("#send")
    content = first.page.locator("article.assistant .content")
    await expect(content).to_contain_text(re.compile(r"(\S+ ){5}"), timeout=WAIT_MS)

    socket_server.terminate()
    socket_server.start()
    for tab in (first, second):
        await expect(tab.page.locator("#conn")).to_have_attribute(
            "data-connects", "2", timeout=WAIT_MS
        )
    answer = first.page.locator("article.assistant")
    assert await answer.get_attribute("data-done") == "false", (
        "the stream ended before the reconnect: the test proves nothing"
    )
    # Live again: the text keeps growing after the reconnect.
    before = len(await content.inner_text())
    await first.page.wait_for_function(
        "n => document.querySelector('article.assistant .content')"
        ".textContent.length > n",
        arg=before,
        timeout=WAIT_MS,
    )
    for tab in (first, second):
        await expect(tab.page.locator("article.assistant")).to_have_attribute(
            "data-done", "true", timeout=WAIT_MS
        )

    chat_id = first.page.url.split("#chat=")[1]
    _, chat = http_get(f"{pages_server.http}/api/chats/{chat_id}/", token_for(alice))
    stored = chat["messages"][-1]
    assert stored["done"] is True
    assert len(stored["content"].split()) == 100
    for tab in (first, second):
        assert (
            await tab.page.locator("article.assistant .content").inner_text()
            == (stored["content"])
        )
    await first.shot("chat-after-restart")
    # Chromium logs each refused connection while the server was down.
    refused = r"console: WebSocket connection to .* failed"
    first.assert_no_errors(refused)
    second.assert_no_errors(refused)
