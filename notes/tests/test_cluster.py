"""Two y-py clients editing one note through two real server processes converge."""

import asyncio
import base64
import json

import pytest
import y_py as Y
from channels.db import database_sync_to_async

from conftest import WsClient, http_get, token_for
from notes import services

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


class RemoteEditor:
    """A y-py document kept in sync over a real WebSocket."""

    def __init__(self, client: WsClient, document_id: str) -> None:
        self.client = client
        self.document_id = document_id
        self.doc = Y.YDoc()
        self.acks: dict[int, dict] = {}

    async def join(self) -> None:
        await self.client.conn.send(
            json.dumps(
                {
                    "event": "ydoc:document:join",
                    "data": {"document_id": self.document_id},
                    "ack": 1,
                }
            )
        )
        while 1 not in self.acks:
            await self.pump()

    async def pump(self, timeout: float = 5) -> None:
        frame = json.loads(await asyncio.wait_for(self.client.conn.recv(), timeout))
        if "ack" in frame:
            self.acks[frame["ack"]] = frame
        elif frame.get("event") in ("ydoc:document:state", "ydoc:document:update"):
            key = "state" if frame["event"] == "ydoc:document:state" else "update"
            Y.apply_update(self.doc, base64.b64decode(frame["data"][key]))

    async def type(self, index: int, chunk: str, ack: int) -> None:
        before = Y.encode_state_vector(self.doc)
        text = self.doc.get_text("content")
        with self.doc.begin_transaction() as txn:
            text.insert(txn, min(index, len(str(text))), chunk)
        update = base64.b64encode(Y.encode_state_as_update(self.doc, before)).decode()
        await self.client.conn.send(
            json.dumps(
                {
                    "event": "ydoc:document:update",
                    "data": {"document_id": self.document_id, "update": update},
                    "ack": ack,
                }
            )
        )

    @property
    def text(self) -> str:
        return str(self.doc.get_text("content"))


async def test_concurrent_editors_on_two_instances_converge(cluster, people, settings):
    one, two = cluster
    owner, other = people["alice"], people["bob"]

    def create():
        note = services.note_create(owner=owner, title="Shared", content="start")
        services.note_grant(note=note, user_id=other.id, permission="write")
        return note

    note = await database_sync_to_async(create)()
    document_id = f"note:{note.id}"
    a = RemoteEditor(await WsClient.open(one.ws, owner), document_id)
    b = RemoteEditor(await WsClient.open(two.ws, other), document_id)
    await a.join()
    await b.join()
    assert a.text == b.text == "start"
    # Both type at once, without waiting for each other's updates.
    for i in range(20):
        await a.type(0, f"a{i} ", ack=100 + i)
        await b.type(10_000, f" b{i}", ack=100 + i)
    while len(a.acks) < 21 or len(b.acks) < 21:
        await asyncio.gather(*(e.pump() for e in (a, b) if len(e.acks) < 21))
    acks = list(a.acks.values()) + list(b.acks.values())
    assert [f for f in acks if "data" not in f] == []
    # Drain the relayed updates until both documents agree.
    for _ in range(200):
        if a.text == b.text and len(a.text) > len("start") + 100:
            break
        await asyncio.gather(
            *(e.pump(timeout=2) for e in (a, b)), return_exceptions=True
        )
    assert a.text == b.text
    assert all(f"a{i} " in a.text and f" b{i}" in a.text for i in range(20))
    # The server's document agrees, and so does the note's content once saved.
    await asyncio.sleep(1.0)
    status, body = await asyncio.to_thread(
        http_get, f"{one.http}/api/notes/{note.id}/", token_for(owner)
    )
    assert (status, body["content"]) == (200, a.text)
    await a.client.close()
    await b.client.close()
