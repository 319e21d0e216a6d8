"""Reading chat events in tests: emit events:chat (or any event) with or without an
ack, and find `events` of one type, keeping the frames that arrived meanwhile (a
presence sent before a join's ack, an error event before a `false`)."""

import asyncio

from testing.clients import SocketClient


def frame(chat_id, type_, data=None, **extra) -> dict:
    """An events:chat payload as Open WebUI builds it."""
    inner = {"type": type_} if data is None else {"type": type_, "data": data}
    return {"chat_id": chat_id, "data": inner, **extra}


def _backlog(client: SocketClient) -> list[dict]:
    return client.__dict__.setdefault("backlog", [])


async def send(client: SocketClient, data, event: str = "events:chat") -> None:
    """An emit without an ack, as Open WebUI sends leave, typing and last_read_at."""
    await client.send({"event": event, "data": data})


async def call(client: SocketClient, data, event: str = "events:chat") -> dict:
    """Emit with an ack; the ack frame. Frames that came first are kept."""
    ack = client.new_ack()
    await client.send({"event": event, "data": data, "ack": ack})
    while True:
        got = await client.recv()
        if got.get("ack") == ack:
            return got
        _backlog(client).append(got)


async def event(
    client: SocketClient, name: str, timeout: float = 2, kind: str | None = None
):
    """The data of the next event `name` (of `events` type `kind`), kept or new;
    frames before it are dropped."""

    def wanted(got: dict) -> bool:
        if got.get("event") != name:
            return False
        return kind is None or got["data"]["data"]["type"] == kind

    backlog = _backlog(client)
    while backlog:
        got = backlog.pop(0)
        if wanted(got):
            return got["data"]
    while True:
        got = await client.recv(timeout)
        if wanted(got):
            return got["data"]


async def chat_events(client: SocketClient, kind: str, timeout: float = 2) -> dict:
    """The next `events` frame of type `kind` (others are skipped)."""
    return await event(client, "events", timeout, kind)


async def quiet(client: SocketClient, kind: str, wait: float = 0.4) -> bool:
    """True if no `events` of type `kind` arrives within `wait` (others are kept)."""
    backlog = _backlog(client)
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while loop.time() < end:
        if await client.nothing(0.05):
            continue
        backlog.append(await client.recv())
    return not any(
        got.get("event") == "events" and got["data"]["data"]["type"] == kind
        for got in backlog
    )


def users(*people) -> list[dict]:
    """Presence entries of users, as chat:presence lists them."""
    return [{"id": p.id, "name": p.display_name} for p in people]
