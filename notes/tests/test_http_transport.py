"""Notes over the HTTP transport (docs/protocol.md §10) on two real server processes:
an editor streaming over HTTP, its POSTs landing on the other instance, and an editor
on a WebSocket, in the same document."""

import asyncio
import base64

import pytest

from notes.yjs_format import awareness_update
from realtime.dialects import OPENWEBUI
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_request
from testing.editors import RemoteEditor, converged, stored_content
from testing.factories import note_shared, token_for
from testing.http_transport import RealHttp

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def over_http(server, other) -> RealHttp:
    """A transport streaming from `server`, POSTing to `other` and `server` in turn."""
    return RealHttp(server.http, post_to=[other.http, server.http])


async def awareness_of(editor: RemoteEditor, count: int, timeout: float = 5) -> list:
    """The editor's first `count` relayed awareness updates (fails after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(editor.awareness) < count:
        assert asyncio.get_running_loop().time() < deadline, editor.awareness
        await asyncio.sleep(0.05)
    return editor.awareness[:count]


async def test_an_http_editor_and_a_websocket_editor_converge(cluster, people):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    note_id = await note_shared(alice, [bob], content="start")
    a = await RemoteEditor.open(over_http(one, two), alice, note_id)
    b = await RemoteEditor.open(two.ws, bob, note_id)
    try:
        assert a.joined_text == b.joined_text == "start"

        async def http_typist():
            # One POST at a time, as the transport's clients send.
            for i in range(15):
                await a.insert(0, f"a{i} ")

        # Both type at once, without waiting for each other's updates.
        await asyncio.gather(
            http_typist(), *(b.insert(10_000, f" b{i}") for i in range(15))
        )
        text = await converged([a, b])
        assert all(f"a{i} " in text and f" b{i}" in text for i in range(15))
        assert await stored_content(two, note_id, alice, text) == text
        # Cursors each way, relayed as the sender's user, and not to the sender: an
        # echo of alice's own would come before bob's, which is sent after.
        document_id = f"note:{note_id}"
        for sender, watcher, who, client_id in ((a, b, alice, 11), (b, a, bob, 22)):
            update = base64.b64encode(
                awareness_update(client_id, 1, '{"cursor": {"anchor": 2}}')
            ).decode()
            frame = {"document_id": document_id, "update": update}
            assert "error" not in await sender.call("ydoc:awareness:update", frame)
            assert await awareness_of(watcher, 1) == [
                {"document_id": document_id, "user_id": who.id, "update": update}
            ]
        assert (len(a.awareness), len(b.awareness)) == (1, 1)
    finally:
        await a.close()
        await b.close()


async def test_join_note_over_http_hears_a_rename_made_on_the_other_instance(
    cluster, people
):
    one, two = cluster
    alice, bob = people["alice"], people["bob"]
    note_id = await note_shared(alice, [bob])
    # Open WebUI's dialect: its clients are the ones told of note changes.
    web = await SocketClient.open(
        over_http(two, one), bob, join=True, protocol=OPENWEBUI
    )
    tab = await SocketClient.open(RealSocket(one.ws), alice, protocol=OPENWEBUI)
    try:
        for client in (web, tab):
            reply = await client.call("join-note", {"note_id": note_id})
            assert reply["data"] == {"note_id": note_id}, reply
        status, _ = await asyncio.to_thread(
            http_request,
            f"{one.http}/api/notes/{note_id}/",
            token_for(alice),
            b'{"title": "Renamed"}',
            "PATCH",
        )
        assert status == 200
        for client in (web, tab):
            changed = await client.event("events:note", 5)
            assert (changed["id"], changed["title"]) == (note_id, "Renamed")
    finally:
        await web.close()
        await tab.close()
