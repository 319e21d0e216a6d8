"""realtime.session on its own: a Session with a transport that records what it is
given (the consumer's part), exercised through its public methods."""

import asyncio
import gc
import json

import pytest

from realtime import wire
from realtime.errors import CLOSE_SLOW_CONSUMER, CallError, EventError
from realtime.session import Session, per_session


class Transport:
    """What a consumer gives a Session: send and close, recorded."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: list[int] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.closed.append(code)


@pytest.fixture
def transport():
    return Transport()


@pytest.fixture
async def session(transport):
    session = Session(send=transport.send, close=transport.close)
    session.start()
    yield session
    session.shutdown()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_go_out_in_order(session, transport):
    for i in range(50):
        session.push(f"frame {i}")
    session.emit("hello", {"n": 1})
    await settle()
    assert transport.sent[:50] == [f"frame {i}" for i in range(50)]
    assert json.loads(transport.sent[50]) == {"event": "hello", "data": {"n": 1}}


async def test_close_sends_what_was_queued_first(session, transport):
    session.push("last words")
    await session.close(4000)
    assert transport.sent == ["last words"] and transport.closed == [4000]
    session.push("after")  # a closed session queues nothing
    await settle()
    assert transport.sent == ["last words"]


async def test_a_slow_consumer_is_closed(settings, transport):
    settings.OUTBOUND_QUEUE_MAX = 3
    session = Session(send=transport.send, close=transport.close)  # no writer
    for i in range(4):
        session.push(f"frame {i}")
    await settle()
    assert transport.closed == [CLOSE_SLOW_CONSUMER] and transport.sent == []


async def test_frame_rate_is_a_token_bucket(settings, transport):
    settings.FRAME_RATE, settings.FRAME_BURST = 1, 3
    session = Session(send=transport.send, close=transport.close)
    assert [session.allow_frame() for _ in range(4)] == [True, True, True, False]


async def test_a_call_gets_its_reply(session, transport):
    call = asyncio.ensure_future(session.call("ask", {"q": 1}, timeout=2))
    await settle()
    frame = json.loads(transport.sent[-1])
    assert frame["event"] == "ask" and frame["data"] == {"q": 1}
    reply = wire.Reply(call_id=frame["call"], data={"a": 2}, error=None)
    assert session.resolve_reply(reply) is True
    assert await call == {"a": 2}
    assert session.resolve_reply(reply) is False  # answered once only


async def test_a_call_fails_with_the_clients_error_or_a_disconnect(session, transport):
    call = asyncio.ensure_future(session.call("ask", None, timeout=2))
    await settle()
    call_id = json.loads(transport.sent[-1])["call"]
    error = {"code": "nope", "message": "no"}
    session.resolve_reply(wire.Reply(call_id=call_id, data=None, error=error))
    with pytest.raises(CallError):
        await call
    pending = asyncio.ensure_future(session.call("ask", None, timeout=2))
    await settle()
    session.shutdown()
    with pytest.raises(EventError) as raised:
        await pending
    assert raised.value.code == "disconnected"


async def test_per_session_state_is_the_sessions_own_and_goes_with_it(transport):
    state = per_session(dict)
    a = Session(send=transport.send, close=transport.close)
    b = Session(send=transport.send, close=transport.close)
    state(a)["x"] = 1
    assert state(a) == {"x": 1} and state(b) == {}
    del a
    gc.collect()
    assert len(state.made) == 1
