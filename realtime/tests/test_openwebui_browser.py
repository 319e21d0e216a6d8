"""Open WebUI's own use of the socket, in Chromium, against two instances on Redis.

The page (testing/pages/openwebui.html) is a stand-in for Open WebUI 0.12's
front end: it calls the adapter with the exact io() options of its layout, edits a
note the way its Collaboration.ts does (a ProseMirror XmlFragment, updates and states
as int lists, the `initialize` ack, awareness as JSON bytes) and joins a chat the way
Chat.svelte does (`events:chat` join with a boolean ack, typing, presence, the shared
stream). Alice's page is served by one instance (daphne), Bob's by the other
(uvicorn): every relay crosses Redis.
"""

import asyncio
import json
from itertools import zip_longest

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from realtime.tests.test_browser import (  # noqa: F401
    ROOT,
    Tab,
    browser,
    need_yjs_bundle,
)
from testing.cluster import http_get, http_post
from testing.factories import token_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    # Typing ends on the server two seconds after the last refresh.
    pytest.mark.cluster_env(CHAT_TYPING_TIMEOUT=2),
]

PAGE = (ROOT / "testing" / "pages" / "openwebui.html").read_text()
WAIT_MS = 15_000


async def stand_in(chromium, server, user) -> Tab:
    """Open WebUI's page as `user`, served from `server`'s origin."""
    context = await chromium.new_context()
    page = await context.new_page()
    # The page is the test's, written into a document the server served (Chromium
    # lets a page reach 127.0.0.1 only when it came from a local address itself). The
    # token goes in by script, never in a URL that a server could log.
    tab = Tab(page)
    await page.goto(f"{server.http}/")
    identity = {"token": token_for(user), "id": user.id, "name": user.display_name}
    await page.evaluate(
        "identity => sessionStorage.setItem('owui', JSON.stringify(identity))",
        identity,
    )
    await page.set_content(PAGE, wait_until="domcontentloaded")
    await expect(page.locator("body")).to_have_attribute(
        "data-ready", "true", timeout=WAIT_MS
    )
    await until(tab, "harness.connects === 1")
    return tab


async def share(url: str, user, token: str) -> None:
    """Give `user` write access over a share endpoint (notes and chats have one)."""
    status, body = await asyncio.to_thread(
        http_post, url, {"user_id": user.id, "permission": "write"}, token
    )
    assert status == 200, body


async def until(tab: Tab, condition: str) -> None:
    """Wait until a JavaScript condition on the page holds; say what the page saw if
    it does not."""
    try:
        await tab.page.wait_for_function(f"() => {condition}", timeout=WAIT_MS)
    except PlaywrightTimeout:
        seen = await tab.page.evaluate(SEEN)
        raise AssertionError(
            f"{condition}\npage: {seen}\nerrors: {tab.errors}"
        ) from None


# What the page saw, for a failure's message.
SEEN = """() => JSON.stringify({
  connects: harness.connects, disconnects: harness.disconnects, errors: harness.errors,
  presence: harness.presence, typing: harness.typing, joinAcks: harness.joinAcks,
  own: harness.own.length, shared: harness.shared.length,
  notes: Object.fromEntries(Object.entries(harness.notes).map(
    ([k, n]) => [k, {synced: n.synced, text: n.text(), peers: n.peers}])),
})"""


async def test_open_webui_edits_a_note_and_shares_a_chat_across_instances(
    browser,  # noqa: F811
    cluster,
    people,
):
    need_yjs_bundle()
    alice, bob = people["alice"], people["bob"]
    one, two = cluster
    token = token_for(alice)
    _, note = await asyncio.to_thread(
        http_post, f"{one.http}/api/notes/", {"title": "Plan"}, token
    )
    await share(f"{one.http}/api/notes/{note['id']}/share/", bob, token)
    a = await stand_in(browser, one, alice)
    b = await stand_in(browser, two, bob)
    note_js = f"harness.notes[{json.dumps(note['id'])}]"

    # Alice opens the note: an empty document ([0, 0]); she seeds it with initialize.
    await a.page.evaluate(f"harness.openNote({json.dumps(note['id'])}, '#aa3355')")
    await until(a, f"{note_js}.synced")
    assert await a.page.evaluate(f"{note_js}.initialize('Plan')") > 2
    await until(a, f"{note_js}.text() === 'Plan'")

    # Bob opens it on the other instance and gets Alice's seed in his state.
    await b.page.evaluate(f"harness.openNote({json.dumps(note['id'])}, '#3355aa')")
    await until(b, f"{note_js}.synced && {note_js}.text() === 'Plan'")

    # Both type at once, at both ends.
    for i, (left, right) in enumerate(zip_longest(" and more", "Our ", fillvalue="")):
        await a.page.evaluate(f"{note_js}.type({note_js}.text().length, {left!r})")
        if right:
            await b.page.evaluate(f"{note_js}.type({i}, {right!r})")
    await a.page.evaluate(f"{note_js}.type({note_js}.text().length, ' more')")
    want = "Our Plan and more more"
    for tab in (a, b):
        await until(tab, f"{note_js}.text() === {json.dumps(want)}")

    # Awareness as JSON bytes: each sees the other's cursor and name.
    await a.page.evaluate(f"{note_js}.cursor(3)")
    await b.page.evaluate(f"{note_js}.cursor(0)")
    await until(
        b,
        f"Object.values({note_js}.peers).some(s => s.user.name === "
        f"{json.dumps(alice.display_name)} && s.cursor === 3)",
    )
    await until(
        a,
        f"Object.values({note_js}.peers).some(s => s.user.name === "
        f"{json.dumps(bob.display_name)})",
    )

    # The stored content is the document's text, whichever instance saved it.
    async def stored() -> str:
        _, body = await asyncio.to_thread(
            http_get, f"{two.http}/api/notes/{note['id']}/", token_for(bob)
        )
        return body["content"]

    for _ in range(100):
        if await stored() == want:
            break
        await asyncio.sleep(0.1)
    assert await stored() == want

    # A chat shared with Bob: both join, each sees both present.
    _, chat = await asyncio.to_thread(
        http_post, f"{one.http}/api/chats/", {"title": "Trip"}, token
    )
    await share(f"{one.http}/api/chats/{chat['id']}/share/", bob, token)
    for tab in (a, b):
        await tab.page.evaluate(f"harness.joinChat({json.dumps(chat['id'])})")
        await until(tab, "harness.joinAcks.length === 1")
        assert await tab.page.evaluate("harness.joinAcks") == [True]
    both = sorted([alice.id, bob.id])
    for tab in (a, b):
        await until(
            tab,
            "harness.presence && "
            f"JSON.stringify(harness.presence.map(u => u.id).sort()) === "
            f"{json.dumps(json.dumps(both, separators=(',', ':')))}",
        )

    # Bob types (never sending false, as Open WebUI does): Alice sees it, then sees
    # it end when the server times it out.
    name = json.dumps(bob.display_name)
    await b.page.evaluate("harness.typingOn()")
    await until(a, f"harness.typing[{name}] === true")
    await until(a, f"harness.typing[{name}] === false")

    # Alice asks the model: her page gets the stream, Bob's the shared copy.
    status, _ = await asyncio.to_thread(
        http_post,
        f"{one.http}/api/chats/{chat['id']}/completions",
        {"prompt": "Where shall we go?"},
        token,
    )
    assert status in (200, 201, 202)
    await until(a, "harness.own.some(e => e.type === 'chat:completion')")
    await until(b, "harness.shared.length > 0")

    for tab in (a, b):
        assert await tab.page.evaluate("harness.errors") == []
        assert await tab.page.evaluate("harness.disconnects") == []
        tab.assert_no_errors()
