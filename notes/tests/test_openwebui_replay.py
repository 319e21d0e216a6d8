"""Replay of every notes frame Open WebUI's front end sends
(fixtures/openwebui_notes_frames.json), from openwebui sockets on two real server
processes sharing Redis: each frame's documented answer, what the editors on the
other instance receive, in Open WebUI's shapes, and the stored note at the end."""

import asyncio
import json
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from notes.models import Note
from realtime.dialects import OPENWEBUI
from testing.clients import RealSocket, SocketClient
from testing.cluster import http_request
from testing.factories import token_for, users_create
from testing.rich_editor import RichEditor

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

FIXTURE = Path(__file__).parent / "fixtures" / "openwebui_notes_frames.json"
WAIT = 10  # seconds for an expected frame
QUIET = 0.5  # seconds of silence that show nothing was sent


class Editor:
    """An openwebui socket whose frames a reader task queues as they arrive."""

    def __init__(self, client: SocketClient) -> None:
        self.client = client
        self.frames: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.client.frames():
            await self.frames.put(frame)

    async def expect(self, match) -> dict:
        """The next frame that `match` accepts; the ones skipped must be
        `ydoc:user:*` (Open WebUI ignores them) and never an error."""
        while True:
            frame = await asyncio.wait_for(self.frames.get(), WAIT)
            if match(frame):
                return frame
            assert frame.get("event", "").startswith("ydoc:user:"), frame

    async def quiet(self) -> None:
        """Nothing but `ydoc:user:*` arrives for QUIET seconds."""
        await asyncio.sleep(QUIET)
        while not self.frames.empty():
            frame = self.frames.get_nowait()
            assert frame.get("event", "").startswith("ydoc:user:"), frame

    async def close(self) -> None:
        await self.client.close()
        await self.task


def fill(value, names: dict):
    """The fixture's placeholders replaced: {note_id}, {user:x}, {sid:x}."""
    if isinstance(value, str):
        if value in names:
            return names[value]
        for key, real in names.items():
            if isinstance(real, str):
                value = value.replace(key, real)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def check(got, want, where: str) -> None:
    """`got` matches `want`; "$any", "$int" and "$state:<text>" (an int-list state
    whose document's text is <text>) match by kind."""
    if want == "$any":
        return
    if want == "$int":
        assert isinstance(got, int) and not isinstance(got, bool), (where, got)
        return
    if isinstance(want, str) and want.startswith("$state:"):
        editor = RichEditor()
        editor.apply(got)
        assert editor.text == want[len("$state:") :], (where, editor.text)
        return
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, got, want)
        for key in want:
            check(got[key], want[key], f"{where}.{key}")
        return
    assert got == want, (where, got, want)


async def test_open_webui_notes_frames_replayed_on_two_instances(cluster):
    fixture = json.loads(FIXTURE.read_text())
    owner, writer, reader = await users_create("alice", "bob", "carol")
    users = {"a": owner, "b": writer, "r": reader}

    def create() -> str:
        from notes import services

        note = services.note_create(owner=owner, title="Plan")
        services.note_grant(note=note, user_id=writer.id, permission="write")
        services.note_grant(note=note, user_id=reader.id, permission="read")
        return note.id

    note_id = await database_sync_to_async(create)()
    editors: dict[str, Editor] = {}
    for name, spec in fixture["editors"].items():
        server = cluster[spec["instance"]]
        client = await SocketClient.open(
            RealSocket(server.ws, max_size=None), users[name], protocol=OPENWEBUI
        )
        editors[name] = Editor(client)
    names = {
        "{note_id}": note_id,
        "{document_id}": f"note:{note_id}",
        **{f"{{user:{n}}}": u.id for n, u in users.items()},
        **{f"{{sid:{n}}}": e.client.sid for n, e in editors.items()},
    }
    for frame in fixture["frames"]:
        step = frame["step"]
        if "rest" in frame:
            rest = frame["rest"]
            status, body = await asyncio.to_thread(
                http_request,
                f"{cluster[0].http}/api/notes/{note_id}/",
                token_for(users[rest["by"]]),
                json.dumps(rest["body"]).encode(),
                rest["method"],
            )
            assert status == 200, (step, body)
        else:
            sender = editors[frame["from"]]
            out = {"event": frame["event"], "data": fill(frame["data"], names)}
            if frame.get("ack"):
                out["ack"] = sender.client.new_ack()
            await sender.client.send(out)
            if "ack" in out:
                reply = await sender.expect(lambda f, a=out["ack"]: f.get("ack") == a)
                reply.pop("ack")
                check(reply, fill(frame["answer"], names), step)
            if "sender_gets" in frame:
                want = fill(frame["sender_gets"], names)
                got = await sender.expect(
                    lambda f, e=want["event"]: f.get("event") == e
                )
                check(got["data"], want["data"], step)
        for name, want in frame.get("others_get", {}).items():
            want = fill(want, names)
            got = await editors[name].expect(
                lambda f, e=want["event"]: f.get("event") == e
            )
            check(got["data"], want["data"], f"{step} ({name})")
        for name in frame.get("others_get_nothing", []):
            await editors[name].quiet()
    # Nobody got anything the fixture does not say (no error frames either).
    for editor in editors.values():
        await editor.quiet()

    # The last editor left: the note's content is the document's text, saved at
    # once (the refused seeds are in neither).
    for _ in range(50):
        note = await database_sync_to_async(Note.objects.get)(pk=note_id)
        if note.content == fixture["stored"]["content"]:
            break
        await asyncio.sleep(0.1)
    assert note.content == fixture["stored"]["content"]
    assert note.rendered["html"] == fixture["stored"]["rendered_html"]
    for editor in editors.values():
        await editor.close()
