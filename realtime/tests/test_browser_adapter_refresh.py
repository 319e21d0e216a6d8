"""The browser adapter's token refresh in Chromium against a real server, through
Open WebUI's io() page (testing/pages/openwebui-io.html, whose auth callback reads
localStorage.token): a token replaced before its exp is sent in-band and the socket
stays; a socket whose token lapses is closed by the server and reconnects with the
token the page holds then."""

import asyncio
import json
import time
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from realtime.tests.test_browser import WAIT_MS, browser, server  # noqa: F401
from realtime.tests.test_browser_adapter import connect_frames, connects, open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def access_token(user, seconds: float) -> tuple[str, int]:
    """An access token of `user` that expires in `seconds`, and its exp."""
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token), int(token["exp"])


async def test_a_replaced_token_is_refreshed_in_band_and_the_socket_stays(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice = people["alice"]
    first, first_exp = access_token(alice, 5)
    tab, sent, received, _ = await open_page(browser, server.http, first)
    page = tab.page
    sid = (await connects(tab, 1))[0][1]
    hello = next(f for f in received if f.get("ack") == 0)
    assert hello["data"]["exp"] == first_exp
    # What Open WebUI does when it gets a new token: it replaces localStorage.token.
    fresh, fresh_exp = access_token(alice, 600)
    await page.evaluate(f"localStorage.token = {json.dumps(fresh)}")

    while time.time() < first_exp + 1.5:  # past the first token's exp
        await asyncio.sleep(0.1)
    refreshes = [f for _, f in sent if f.get("event") == "refresh"]
    assert [f["data"] for f in refreshes] == [{"token": fresh}]
    acks = [f for f in received if f.get("ack") == refreshes[0]["ack"]]
    assert acks == [{"ack": refreshes[0]["ack"], "data": {"exp": fresh_exp}}]
    seen = await page.evaluate("window.seen")
    assert [e[0] for e in seen] == ["connect"], seen
    assert await page.evaluate("socket.connected && socket.id") == sid
    assert len(connect_frames(sent)) == 1
    tab.assert_no_errors()


async def test_a_lapsed_token_closes_and_the_adapter_reconnects_with_a_new_one(
    browser,  # noqa: F811
    server,  # noqa: F811
    people,
):
    alice = people["alice"]
    short, short_exp = access_token(alice, 3)
    tab, sent, received, _ = await open_page(browser, server.http, short)
    page = tab.page
    sid = (await connects(tab, 1))[0][1]
    # The page has nothing newer: at exp the server says why and closes.
    await page.wait_for_function(
        "window.seen.some(e => e[0] === 'disconnect')", timeout=WAIT_MS
    )
    assert time.time() >= short_exp
    seen = await page.evaluate("window.seen")
    assert seen[-1] == ["disconnect", "transport close", "token expired"]
    assert {"event": "disconnect", "data": {"reason": "token expired"}} in received
    # The same token was never sent again in-band.
    assert not [f for _, f in sent if f.get("event") == "refresh"]
    # The reconnect (0.5 s at the earliest) asks the auth callback again.
    fresh, _ = access_token(alice, 600)
    await page.evaluate(f"localStorage.token = {json.dumps(fresh)}")
    seen = await connects(tab, 2)
    assert connect_frames(sent)[-1]["token"] == fresh
    assert seen[-1][1] != sid and await page.evaluate("socket.connected")
    tab.assert_no_errors(r"console: WebSocket connection to .* failed")
