"""A Yjs editor over a real WebSocket (or another transport of testing.clients), as
the browser's Yjs binding behaves: pycrdt document, ydoc:* events applied as they
arrive, its own edits sent as updates."""

import asyncio
import base64

import pycrdt

from notes.crdt_proxy import LoopHost
from testing.clients import RealSocket, SocketClient, Transport
from testing.cluster import http_get
from testing.factories import token_for

TEXT = "content"


def yjs_bytes(value: str | list[int]) -> bytes:
    """Yjs bytes as either dialect sends them: base64, or Open WebUI's int list."""
    return bytes(value) if isinstance(value, list) else base64.b64decode(value)


def text_of(update: bytes) -> str:
    """The text of a document made of one update (a state)."""
    doc = pycrdt.Doc()
    text = doc.get(TEXT, type=pycrdt.Text)
    doc.apply_update(update)
    return str(text)


# How long an editor waits for an ack: longer than NOTE_CRDT_TIMEOUT (10 s) and a
# CRDT host's replacement, since a request queued behind a hung apply (the fuzz
# tests' pathological updates) is answered only after the host was replaced.
CALL_WAIT = 25.0


class RemoteEditor:
    """One editor: a pycrdt document kept in sync with a note over a real socket.

    A reader task applies every `ydoc:document:state` and `ydoc:document:update` as
    it arrives and keeps every `ydoc:awareness:update` in `awareness`; `joined_text`
    is the text of the state the server sent at join.
    """

    def __init__(self, client: SocketClient, document_id: str) -> None:
        self.client = client
        self.document_id = document_id
        self.doc = pycrdt.Doc()
        self._text = self.doc.get(TEXT, type=pycrdt.Text)
        self.joined_text: str | None = None
        self.errors: list[dict] = []
        self.awareness: list[dict] = []
        self._acks: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    @classmethod
    async def open(
        cls, url: str | Transport, user, note_id: str, protocol: str | None = None
    ) -> "RemoteEditor":
        """Connect as `user` (in dialect `protocol`) and join the note's document,
        over a WebSocket to `url` or over the transport given instead."""
        if isinstance(url, str):
            url = RealSocket(url, max_size=None)
        client = await SocketClient.open(url, user, protocol=protocol)
        editor = cls(client, f"note:{note_id}")
        editor._reader = asyncio.get_running_loop().create_task(editor._read())
        await editor.join()
        return editor

    async def join(self) -> None:
        """Join the document; returns once the state arrived and the join is acked."""
        self.joined_text = None
        reply = await self.call("ydoc:document:join", {"document_id": self.document_id})
        assert reply.get("data") == {"document_id": self.document_id}, reply
        assert self.joined_text is not None, "the state comes before the ack"

    async def leave(self) -> None:
        reply = await self.call(
            "ydoc:document:leave", {"document_id": self.document_id}
        )
        assert "error" not in reply, reply

    async def call(self, event: str, data, timeout: float = CALL_WAIT) -> dict:
        """Emit with an ack and wait for it."""
        ack = self.client.new_ack()
        future = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        await self.client.send({"event": event, "data": data, "ack": ack})
        return await asyncio.wait_for(future, timeout)

    async def _read(self) -> None:
        # Many calls may be in flight at once: one reader hands each ack to its call.
        async for frame in self.client.frames():
            if "ack" in frame and frame["ack"] in self._acks:
                self._acks.pop(frame["ack"]).set_result(frame)
            elif "event" in frame:
                await self._on_event(frame["event"], frame.get("data") or {})

    async def _on_event(self, event: str, data: dict) -> None:
        if event == "ydoc:document:state":
            state = base64.b64decode(data["state"])
            self.joined_text = text_of(state)
            self.doc.apply_update(state)
        elif event == "ydoc:document:update":
            self.doc.apply_update(base64.b64decode(data["update"]))
        elif event == "ydoc:awareness:update":
            self.awareness.append(data)
        elif event == "error":
            self.errors.append(data)

    async def edit(self, change) -> dict:
        """Make a local change (a function of the Text), send its update, wait for
        the ack; returns the ack frame (it must not be an error)."""
        before = self.doc.get_state()
        with self.doc.transaction():
            change(self._text)
        update = self.doc.get_update(before)
        reply = await self.call(
            "ydoc:document:update",
            {
                "document_id": self.document_id,
                "update": base64.b64encode(update).decode(),
            },
        )
        assert "data" in reply, reply
        return reply

    async def insert(self, index: int, chunk: str) -> dict:
        """Type `chunk` at `index` (clamped to the text's end)."""
        return await self.edit(lambda t: t.insert(min(index, len(t)), chunk))

    async def type(self, chunk: str, at: int | None = None) -> None:
        """Type `chunk` one keystroke (one update) at a time, at `at` or the end."""
        for i, char in enumerate(chunk):
            if at is None:
                await self.edit(lambda t, c=char: t.insert(len(t), c))
            else:
                await self.insert(at + i, char)

    @property
    def text(self) -> str:
        return str(self._text)

    async def close(self) -> None:
        await self.client.close()
        if self._reader is not None:
            await self._reader


async def converged(editors: list[RemoteEditor], timeout: float = 10) -> str:
    """Wait until every editor has the same text; returns it (fails otherwise)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        texts = {e.text for e in editors}
        if len(texts) == 1:
            return texts.pop()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"editors diverged: {[e.text for e in editors]}")
        await asyncio.sleep(0.05)


async def stored_content(server, note_id: str, owner, want: str) -> str:
    """The note's content over REST, once it caught up with `want` (or after 5 s)."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        status, body = await asyncio.to_thread(
            http_get, f"{server.http}/api/notes/{note_id}/", token_for(owner)
        )
        assert status == 200, body
        if body["content"] == want or asyncio.get_running_loop().time() > deadline:
            return body["content"]
        await asyncio.sleep(0.1)


class SandboxedReader(RemoteEditor):
    """A reader of a document that may hold anything a fuzzer got accepted: the state
    it gets at join is decoded in a CRDT host process (a pycrdt document in the test
    process could crash on it), and relayed updates are counted, not applied."""

    def __init__(self, client: SocketClient, document_id: str) -> None:
        super().__init__(client, document_id)
        self.host = LoopHost("test-reader")
        self.relayed = 0

    async def _on_event(self, event: str, data: dict) -> None:
        if event == "ydoc:document:state":
            state = yjs_bytes(data["state"])
            _, self.joined_text, _ = await self.host.run("merge", [state])
        elif event == "ydoc:document:update":
            self.relayed += 1

    async def close(self) -> None:
        await super().close()
        self.host.close()
