"""Resumable delivery (issue 16) in Chromium: the demo chat page reloaded in the
middle of a stream resumes it from the message's position and the room's history, and
a socket whose connection is cut recovers the missed events on its reconnect. Every
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
from testing.cluster import http_get
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

    def connect_ack(self, index: int) -> dict:
        """The data of socket `index`'s connect ack."""
        acks = [f for f in self.sockets[index]["received"] if f.get("ack") == 0]
        assert acks, f"socket {index} got no connect ack"
        return acks[0]["data"]


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


async def test_a_reload_mid_stream_resumes_from_the_history(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice = people["alice"]
    tab = await login(browser, server.http, alice)
    await tab.page.context.add_init_script(RECORDER)
    await tab.open(tab.page.url)
    chat_id = await start_answer(tab)

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
    assert ask["data"]["room"] == f"user:{alice.id}"
    assert rendered[0][0] != final
    tab.assert_no_errors()


async def test_a_cut_connection_recovers_the_missed_events(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice = people["alice"]
    tab = await login(browser, server.http, alice)
    frames = Frames(tab.page)
    await tab.open(tab.page.url)
    chat_id = await start_answer(tab)
    await tab.page.evaluate(RECORDER)
    reloads = []
    tab.page.on(
        "request",
        lambda r: (
            reloads.append(r.url) if r.url.endswith(f"/api/chats/{chat_id}/") else None
        ),
    )

    # The page's WebSocket closes under the adapter, as a network failure would.
    await tab.page.evaluate("window.realtimeSocket._ws.close()")
    await expect(tab.page.locator("#conn")).to_have_attribute(
        "data-connects", "2", timeout=WAIT_MS
    )
    assert await tab.page.evaluate("window.realtimeSocket.recovered") is True
    first, second = frames.connect_ack(0), frames.connect_ack(1)
    [hello] = [f for f in frames.sockets[1]["sent"] if f.get("event") == "connect"]
    assert hello["data"]["recover"]["sid"] == first["sid"]
    room = f"user:{alice.id}"
    assert room in hello["data"]["recover"]["rooms"]
    assert second["recovered"] is True, second
    assert second["recovery"][room]["replayed"] > 0, "nothing was missed: no proof"
    answer = tab.page.locator("article.assistant")
    assert await answer.get_attribute("data-done") == "false"

    await finished(tab, server.http, chat_id, alice)
    assert reloads == [], "a recovered page needs no reload"
    tab.assert_no_errors()
