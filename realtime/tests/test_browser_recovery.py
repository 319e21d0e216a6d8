"""Resumable delivery (issue 16) in Chromium: the demo chat page reloaded in the
middle of a stream resumes it from the message's position and the room's history, and
a socket whose connection is cut, or whose instance restarts (the history in Redis),
recovers the missed events on its reconnect, with no reload. Every
text the page shows must be a prefix of the stored answer (a lost or repeated delta
breaks that), and the deltas alone, before the completion event that carries the
whole text, must reach the stored answer."""

import json
import re

import pytest
from playwright.async_api import expect

from realtime.tests.test_browser import (  # noqa: F401
    WAIT_MS,
    Tab,
    browser,
    login,
    server,
)
from testing.cluster import http_get, http_post
from testing.factories import token_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every (text, data-done) the page renders for the answer, in order (an init script,
# so it runs again in a reloaded document).
RECORDER = """
(() => {
  window.rendered = [];
  const record = () => {
    const node = document.querySelector("article.assistant");
    if (!node) return;
    const entry = [node.querySelector(".content").textContent, node.dataset.done];
    const last = window.rendered.at(-1);
    const same = last && last[0] === entry[0] && last[1] === entry[1];
    if (!same) window.rendered.push(entry);
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
})();
"""

# A slow history: its request leaves the page 500 ms late, and its ack comes 500 ms
# late, so live events of the message arrive both before the server reads the
# history (it holds them too) and after (the page must apply each once, in order).
SLOW_HISTORY = """
(() => {
  const DELAY = 500;
  const asked = new Set();
  window.overtaking = 0; // live events delivered while a history request is out
  let out = 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (text) {
    const frame = JSON.parse(text);
    if (frame.event !== "history") return send.call(this, text);
    asked.add(frame.ack);
    out += 1;
    setTimeout(() => send.call(this, text), DELAY);
  };
  const handler = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");
  Object.defineProperty(WebSocket.prototype, "onmessage", {
    get() { return handler.get.call(this); },
    set(fn) {
      const late = (message) => {
        const frame = JSON.parse(message.data);
        if (asked.has(frame.ack)) {
          setTimeout(() => {
            out -= 1;
            fn.call(this, message);
          }, DELAY);
          return;
        }
        if (out && "offset" in frame) window.overtaking += 1;
        fn.call(this, message);
      };
      handler.set.call(this, fn && late);
    },
  });
})();
"""


class Frames:
    """The JSON frames each WebSocket of a page sent and received, by socket."""

    def __init__(self, page) -> None:
        self.sockets: list[dict] = []
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        record = {"sent": [], "received": []}
        self.sockets.append(record)
        ws.on("framesent", lambda payload: record["sent"].append(json.loads(payload)))
        ws.on(
            "framereceived",
            lambda payload: record["received"].append(json.loads(payload)),
        )

    def connected(self) -> list[dict]:
        """The sockets that got a connect ack (not the attempts that failed)."""
        return [
            s for s in self.sockets if any(f.get("ack") == 0 for f in s["received"])
        ]


def connect_of(socket: dict) -> tuple[dict, dict]:
    """A socket's connect frame and the data of its ack."""
    hello = next(f for f in socket["sent"] if f.get("event") == "connect")
    ack = next(f for f in socket["received"] if f.get("ack") == 0)
    return hello["data"], ack["data"]


async def start_answer(tab: Tab, tokens: int = 100, tps: int = 10) -> str:
    """Ask for a long answer; returns the chat id once a few words have streamed."""
    await tab.page.fill("input[name=tokens]", str(tokens))
    await tab.page.fill("input[name=tps]", str(tps))
    await tab.page.click("#send")
    content = tab.page.locator("article.assistant .content")
    await expect(content).to_contain_text(re.compile(r"(\S+ ){5}"), timeout=WAIT_MS)
    return tab.page.url.split("#chat=")[1]


async def finished(tab: Tab, base: str, chat_id: str, user) -> str:
    """Wait for the answer to end; check what the page rendered; return the text."""
    answer = tab.page.locator("article.assistant")
    await expect(answer).to_have_attribute("data-done", "true", timeout=WAIT_MS)
    _, chat = http_get(f"{base}/api/chats/{chat_id}/", token_for(user))
    stored = chat["messages"][-1]
    assert stored["done"] is True and len(stored["content"].split()) == 100
    final = stored["content"]
    assert await answer.locator(".content").inner_text() == final
    rendered = await tab.page.evaluate("window.rendered")
    bad = [text for text, _ in rendered if not final.startswith(text)]
    assert bad == [], "a delta was lost or repeated"
    assert [final, "false"] in rendered, "the deltas alone did not make the answer"
    return final


@pytest.fixture
async def alice_tab(browser, server, people):  # noqa: F811
    """Alice, logged in on the single server: her tab, not opened yet, and her."""
    return await login(browser, server.http, people["alice"]), people["alice"]


async def test_a_reload_mid_stream_resumes_from_the_history(alice_tab, server):  # noqa: F811
    tab, alice = alice_tab
    await tab.page.context.add_init_script(RECORDER)
    await tab.open(tab.page.url)
    chat_id = await start_answer(tab)
    await tab.page.context.add_init_script(SLOW_HISTORY)

    frames = Frames(tab.page)
    await tab.page.reload()
    await expect(tab.page.locator("body")).to_have_attribute(
        "data-ready", "true", timeout=WAIT_MS
    )
    rendered = await tab.page.evaluate("window.rendered")
    assert rendered and rendered[0][1] == "false", "the answer ended before the reload"

    final = await finished(tab, server.http, chat_id, alice)
    # The page asked the history after the stored message's position, and got it.
    [socket] = frames.sockets
    [ask] = [f for f in socket["sent"] if f.get("event") == "history"]
    reply = next(f for f in socket["received"] if f.get("ack") == ask["ack"])["data"]
    assert reply["recovered"] is True, reply
    assert reply["events"], "the stored text was not behind: no proof"
    overtaking = await tab.page.evaluate("window.overtaking")
    assert overtaking, "no live event came during the history request: no proof"
    assert ask["data"]["room"] == f"user:{alice.id}"
    assert rendered[0][0] != final
    tab.assert_no_errors()


async def recovers(tab: Tab, frames: Frames, base: str, user, cut) -> None:
    """Stream an answer, `cut()` the page's connection in the middle, and check that
    the reconnect recovered the missed events, with no reload, and the text is whole."""
    chat_id = await start_answer(tab)
    await tab.page.evaluate(RECORDER)
    reloads = []
    tab.page.on(
        "request",
        lambda r: (
            reloads.append(r.url) if r.url.endswith(f"/api/chats/{chat_id}/") else None
        ),
    )
    before = len(frames.connected())
    await cut()
    await expect(tab.page.locator("#conn")).to_have_attribute(
        "data-connects", "2", timeout=WAIT_MS
    )
    assert await tab.page.evaluate("window.realtimeSocket.recovered") is True
    # The page's socket before the cut and the one after (a page loaded before the
    # test's may have had one too).
    *_, first, second = frames.connected()
    assert len(frames.connected()) == before + 1
    _, hello = connect_of(first)
    recover, ack = connect_of(second)
    room = f"user:{user.id}"
    assert recover["recover"]["sid"] == hello["sid"]
    assert room in recover["recover"]["rooms"]
    assert ack["recovered"] is True, ack
    assert ack["recovery"][room]["replayed"] > 0, "nothing was missed: no proof"
    answer = tab.page.locator("article.assistant")
    assert await answer.get_attribute("data-done") == "false", "ended: no proof"
    await finished(tab, base, chat_id, user)
    assert reloads == [], "a recovered page needs no reload"


async def test_a_cut_connection_recovers_the_missed_events(alice_tab, server):  # noqa: F811
    tab, alice = alice_tab
    frames = Frames(tab.page)
    await tab.open(tab.page.url)

    async def cut() -> None:
        # The page's WebSocket closes under the adapter, as a network failure would.
        await tab.page.evaluate("window.realtimeSocket._ws.close()")

    await recovers(tab, frames, server.http, alice, cut)
    tab.assert_no_errors()


@pytest.mark.cluster
@pytest.mark.cluster_env(ALLOWED_ORIGINS="*")
async def test_a_socket_whose_instance_restarts_recovers_from_redis(
    browser,  # noqa: F811
    cluster,
    people,
):
    """The page and the generation on instance 1, the WebSocket on instance 2 (?ws=),
    which restarts mid-stream: the history is in Redis, so the new process replays
    what the socket missed while it was down."""
    pages_server, socket_server = cluster
    alice = people["alice"]
    tab = await login(browser, pages_server.http, alice)
    frames = Frames(tab.page)
    await tab.open(f"{pages_server.http}/chat/?ws={socket_server.ws}")

    async def cut() -> None:
        socket_server.terminate()
        socket_server.start()

    await recovers(tab, frames, pages_server.http, alice, cut)
    # Chromium logs each refused connection while the server was down.
    tab.assert_no_errors(r"console: WebSocket connection to .* failed")


async def test_the_channels_page_gets_messages_posted_while_it_was_cut(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice, bob = people["alice"], people["bob"]
    token = token_for(alice)
    _, general = http_post(
        f"{server.http}/api/channels/",
        {"name": "general", "member_ids": [bob.id]},
        token,
    )
    room = f"channel:{general['id']}"
    tab = await login(browser, server.http, bob)
    frames = Frames(tab.page)
    await tab.open(f"{server.http}/channels/#channel={general['id']}")
    messages = tab.page.locator("#messages [data-channel-message]")
    http_post(
        f"{server.http}/api/channels/{general['id']}/messages/",
        {"content": "before"},
        token,
    )
    await expect(messages).to_have_count(1, timeout=WAIT_MS)
    reloads = []
    tab.page.on(
        "request",
        lambda r: reloads.append(r.url) if "/messages/" in r.url else None,
    )
    # Cut, then post while the adapter waits to reconnect (at least 500 ms).
    await tab.page.evaluate("window.realtimeSocket._ws.close()")
    for i in range(3):
        http_post(
            f"{server.http}/api/channels/{general['id']}/messages/",
            {"content": f"missed {i}"},
            token,
        )
    await expect(tab.page.locator("#conn")).to_have_attribute(
        "data-connects", "2", timeout=WAIT_MS
    )
    await expect(messages).to_have_count(4, timeout=WAIT_MS)
    texts = [await m.inner_text() for m in await messages.all()]
    assert [t.split("\n")[-1] for t in texts][-3:] == [f"missed {i}" for i in range(3)]
    *_, second = frames.connected()
    recovery = [f["data"] for f in second["received"] if f.get("event") == "recovery"]
    assert [r["room"] for r in recovery] == [room]
    assert recovery[0]["recovered"] is True and recovery[0]["replayed"] == 3
    assert await tab.page.evaluate("window.realtimeSocket.recovered") is True
    assert reloads == [], "a recovered page needs no reload"
    tab.assert_no_errors()
