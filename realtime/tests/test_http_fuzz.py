"""Random bytes at the HTTP transport's two paths, in process: every request gets one
of the documented answers, never a crash, and the session it aimed at still works."""

import asyncio
import random

import pytest

from realtime.asgi import application
from realtime.wire import dumps, loads
from testing.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)

ANSWERS = {204, 400, 403, 404, 409, 413, 415, 429}
CASES = 300


class Exchange:
    """One ASGI HTTP request in process: the body in, the messages out."""

    def __init__(self, path: str, headers: dict, body: bytes) -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (k.lower().encode(), v.encode("latin1")) for k, v in headers.items()
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        self.body = body
        self.sent: list[dict] = []
        self.arrived = asyncio.Event()
        self.gone = asyncio.Event()
        self._read = False

    async def receive(self) -> dict:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        self.arrived.set()

    async def run(self) -> None:
        await application(self.scope, self.receive, self.send)

    def status(self) -> int:
        return self.sent[0]["status"]

    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent[1:]).decode()


async def open_stream(user) -> tuple[Exchange, asyncio.Task, dict]:
    connect = dumps({"event": "connect", "data": {"token": token_for(user)}, "ack": 0})
    exchange = Exchange(
        "/ws/http/", {"content-type": "application/x-ndjson"}, (connect + "\n").encode()
    )
    task = asyncio.get_running_loop().create_task(exchange.run())
    while 'data: {"ack":0' not in exchange.text():
        exchange.arrived.clear()
        await asyncio.wait_for(exchange.arrived.wait(), 5)
    first = exchange.text().split("\n\n")[0]
    opened = loads(first.split("data: ", 1)[1])
    return exchange, task, opened


def random_body(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:  # lines of JSON-ish text
        parts = [
            '{"event":',
            '"user-list"',
            "}",
            "[",
            "null",
            '"ack":',
            "1e999",
            "\\u0000",
        ]
        return "\n".join(
            "".join(rng.choice(parts) for _ in range(rng.randrange(1, 6)))
            for _ in range(rng.randrange(1, 5))
        ).encode()
    if kind == 2:  # valid frames, some of them for events that do not exist
        return "".join(
            dumps(
                {"event": rng.choice(["user-list", "nope", "heartbeat"]), "data": None}
            )
            + "\n"
            for _ in range(rng.randrange(1, 4))
        ).encode()
    if kind == 3:
        return b"\n" * rng.randrange(0, 300)
    return "é€😀\n".encode() * rng.randrange(1, 50)


def random_headers(rng: random.Random, opened: dict, seq: int) -> dict:
    headers = {}
    if rng.random() < 0.9:
        headers["content-type"] = rng.choice(
            [
                "application/x-ndjson",
                "application/x-ndjson; charset=utf-8",
                "text/plain",
                "",
            ]
        )
    key = opened["key"]
    choice = rng.randrange(6)
    if choice == 0:
        key = ""
    elif choice == 1:
        key = key[:-1] + ("A" if key[-1] != "A" else "B")
    elif choice == 2:
        key = "x" + key[1:]
    elif choice == 3:
        key = rng.randbytes(20).decode("latin1")
    headers["x-realtime-key"] = key
    headers["x-realtime-seq"] = rng.choice(
        [str(seq), str(seq), "0", "-1", "1.5", "x", str(2**60), str(seq + 3)]
    )
    if rng.random() < 0.1:
        headers["origin"] = "https://elsewhere.example"
    return headers


async def test_random_posts_get_documented_answers_and_harm_nothing(people):
    rng = random.Random(1729)
    stream, task, opened = await open_stream(people["alice"])
    sid = opened["sid"]
    seq = 1
    try:
        for _ in range(CASES):
            target = sid if rng.random() < 0.9 else rng.choice(["x", "a" * 300, "%00"])
            post = Exchange(
                f"/ws/http/{target}/",
                random_headers(rng, opened, seq),
                random_body(rng),
            )
            await asyncio.wait_for(post.run(), 5)
            assert post.status() in ANSWERS, (post.scope["headers"], post.body[:50])
            if post.status() == 204 and post.scope["headers"]:
                sent_seq = dict(post.scope["headers"]).get(b"x-realtime-seq", b"")
                if sent_seq == str(seq).encode():
                    seq += 1
        assert not task.done(), "the stream ended"
        # The session still answers, in order, after all of that.
        frame = dumps({"event": "user-list", "data": None, "ack": 99})
        post = Exchange(
            f"/ws/http/{sid}/",
            {
                "content-type": "application/x-ndjson",
                "x-realtime-key": opened["key"],
                "x-realtime-seq": str(seq),
            },
            (frame + "\n").encode(),
        )
        await post.run()
        assert post.status() == 204
        while '"ack":99' not in stream.text():
            stream.arrived.clear()
            await asyncio.wait_for(stream.arrived.wait(), 5)
        assert '{"ack":99,"data":{"user_ids":[' in stream.text()
    finally:
        stream.gone.set()
        await asyncio.wait_for(task, 5)


async def test_random_opening_bodies_never_crash(people):
    rng = random.Random(4242)
    for _ in range(60):
        headers = {"content-type": rng.choice(["application/x-ndjson", "text/plain"])}
        exchange = Exchange("/ws/http/", headers, random_body(rng))
        task = asyncio.get_running_loop().create_task(exchange.run())
        await asyncio.wait_for(exchange.arrived.wait(), 5)
        assert exchange.status() in {200, 400, 413, 415}
        exchange.gone.set()
        await asyncio.wait_for(task, 5)
