import pytest

from realtime import wire
from realtime.errors import BAD_REQUEST


def test_emit_with_ack_is_parsed():
    frame = wire.parse_frame('{"event": "user-list", "data": {"a": 1}, "ack": 7}')
    assert frame == wire.Emit(event="user-list", data={"a": 1}, ack=7)


def test_emit_without_ack_or_data():
    assert wire.parse_frame('{"event": "heartbeat"}') == wire.Emit(
        "heartbeat", None, None
    )


def test_reply_is_parsed():
    frame = wire.parse_frame('{"reply": 3, "data": [1, 2]}')
    assert frame == wire.Reply(call_id=3, data=[1, 2], error=None)


@pytest.mark.parametrize(
    "text, ack, fragment",
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ('"connect"', None, "JSON object"),
        ("NaN", None, "not valid JSON"),
        ('{"event": 5, "ack": 1}', 1, "event must be"),
        ('{"event": "", "ack": 2}', 2, "event must be"),
        ('{"event": "' + "x" * 129 + '", "ack": 3}', 3, "event must be"),
        ('{"event": "a", "ack": -1}', None, "ack must be"),
        ('{"event": "a", "ack": "1"}', None, "ack must be"),
        ('{"event": "a", "ack": true}', None, "ack must be"),
        ('{"event": "a", "ack": 1.5}', None, "ack must be"),
        ('{"event": "a", "ack": 9007199254740992}', None, "ack must be"),
        ('{"event": "a", "ack": 4, "user_id": 1}', 4, "unknown frame field"),
        ('{"reply": "x"}', None, "reply must be"),
        ('{"reply": 1, "error": "boom"}', None, "reply error"),
        ('{"reply": 1, "event": "x"}', None, "unknown frame field"),
    ],
)
def test_bad_frames_are_bad_request_with_ack_when_known(text, ack, fragment):
    with pytest.raises(wire.FrameError) as raised:
        wire.parse_frame(text)
    assert raised.value.code == BAD_REQUEST
    assert raised.value.ack == ack
    assert fragment in raised.value.message


def test_frames_encode_compactly():
    assert wire.event_frame("x", {"a": "é"}) == '{"event":"x","data":{"a":"é"}}'
    assert wire.call_frame("x", None, 2) == '{"event":"x","data":null,"call":2}'
