"""Strict REST input on every endpoint: ids in range (body, query and path) and JSON
strings where docs/protocol.md §9 says string. Never a 500, always the one error
shape."""

import pytest

from channels_app.models import Channel, ChannelMember, ChannelMessage
from chats.models import Chat, Message
from notes.models import Note
from testing.factories import api_for

pytestmark = pytest.mark.django_db

# The values: out of range both ways, past 32 and 64 bits, and the wrong
# JSON types. 2**31 is a valid id that names nothing (PostgreSQL's `integer` would
# have overflowed there).
VALUES = {
    "0": 0,
    "-1": -1,
    "2^31": 2**31,
    "2^63": 2**63,
    "2^64": 2**64,
    "string": "7",
    "float": 1.5,
}
IN_RANGE = "2^31"
# For ids that are strings, every value but the string is the wrong type.
NOT_STRINGS = [k for k, v in VALUES.items() if not isinstance(v, str)]
# In a path or query string every value is text; "abc" is the non-number.
PATH_TEXT = {**{k: str(v) for k, v in VALUES.items()}, "string": "abc"}


@pytest.fixture
def world(make_user, settings):
    """An admin's chat, channel (with a message and a second member) and note, made
    with the ORM: the fixture runs for each of many cases."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alice = make_user("alice", role="admin")
    bob = make_user("bob")
    channel = Channel.objects.create(name="c", owner=alice)
    ChannelMember.objects.create(channel=channel, user=alice, role="owner")
    ChannelMember.objects.create(channel=channel, user=bob)
    message = ChannelMessage.objects.create(channel=channel, author=alice, content="hi")
    return {
        "api": api_for(alice),
        "cid": channel.id,
        "mid": message.id,
        "nid": Note.objects.create(owner=alice, title="n").id,
        "chat": Chat.objects.create(owner=alice).id,
    }


# method, path, body with the id, the field's name, status for a valid id naming
# nothing.
BODY_IDS = [
    ("post", "/api/channels/", lambda v: {"member_ids": [v]}, "member_ids", 404),
    ("post", "/api/channels/{cid}/members/", lambda v: {"user_id": v}, "user_id", 404),
    (
        "post",
        "/api/channels/{cid}/messages/",
        lambda v: {"content": "x", "parent_id": v},
        "parent_id",
        404,
    ),
    (
        "post",
        "/api/notes/{nid}/share/",
        lambda v: {"user_id": v, "permission": "read"},
        "user_id",
        404,
    ),
    (
        "post",
        "/api/realtime/emit/",
        lambda v: {"user_id": v, "event": "x"},
        "user_id",
        202,
    ),
]
PATH_IDS = [
    ("post", "/api/users/{v}/disconnect/", None, "user_id", 202),
    ("delete", "/api/channels/{cid}/members/{v}/", None, "user_id", 404),
    ("patch", "/api/channels/{cid}/messages/{v}/", {"content": "y"}, "message_id", 404),
    ("delete", "/api/channels/{cid}/messages/{v}/", None, "message_id", 404),
]
QUERY_IDS = [("get", "/api/channels/{cid}/messages/?before={v}", None, "before", 200)]
# Ids that are strings (UUIDs, sids): a number in a body is refused; in a path any
# text is a possible id, so it is simply not found.
BODY_STRING_IDS = [
    (
        "post",
        "/api/chats/{chat}/completions",
        lambda v: {"prompt": "x", "message_id": v},
        "message_id",
    ),
    ("post", "/api/realtime/emit/", lambda v: {"sid": v, "event": "x"}, "sid"),
    (
        "post",
        "/api/realtime/emit/",
        lambda v: {"room": "r", "skip_sid": v, "event": "x"},
        "skip_sid",
    ),
]
PATH_STRING_IDS = [
    ("get", "/api/chats/{v}/", None),
    ("post", "/api/chats/{v}/completions", {"prompt": "x"}),
    ("get", "/api/chats/{v}/tasks/", None),
    ("post", "/api/tasks/{v}/stop", None),
    ("get", "/api/channels/{v}/", None),
    ("post", "/api/channels/{v}/messages/", {"content": "x"}),
    ("post", "/api/channels/{v}/read/", None),
    ("get", "/api/notes/{v}/", None),
    ("post", "/api/notes/{v}/share/", {"user_id": 1, "permission": "read"}),
]


def send(world, method, path, body, **ids):
    url = path.format(**{k: world[k] for k in ("cid", "nid", "chat")}, **ids)
    return getattr(world["api"], method)(url, body, format="json")


def assert_bad_request(response, field, message):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("bad_request", message)
    assert field in error["details"]


@pytest.mark.parametrize("value", VALUES, ids=VALUES)
@pytest.mark.parametrize(
    "method, path, body, field, ok", BODY_IDS, ids=[f"{e[1]}:{e[3]}" for e in BODY_IDS]
)
def test_body_ids_are_range_checked(world, method, path, body, field, ok, value):
    response = send(world, method, path, body(VALUES[value]))
    if value == IN_RANGE:
        assert response.status_code == ok, response.content
        assert response.status_code < 300 or "error" in response.json()
    else:
        assert_bad_request(response, field, "invalid request body")


@pytest.mark.parametrize("value", VALUES, ids=VALUES)
@pytest.mark.parametrize(
    "method, path, body, field, ok",
    PATH_IDS + QUERY_IDS,
    ids=[f"{e[0]} {e[1]}" for e in PATH_IDS + QUERY_IDS],
)
def test_path_and_query_ids_are_range_checked(
    world, method, path, body, field, ok, value
):
    response = send(world, method, path, body, v=PATH_TEXT[value])
    if value == IN_RANGE:
        assert response.status_code == ok, response.content
    else:
        message = "invalid request body" if "?" in path else "invalid path"
        assert_bad_request(response, field, message)
    assert ChannelMessage.objects.get(id=world["mid"]).content == "hi"


@pytest.mark.parametrize("value", NOT_STRINGS, ids=NOT_STRINGS)
@pytest.mark.parametrize(
    "method, path, body, field",
    BODY_STRING_IDS,
    ids=[f"{e[1]}:{e[3]}" for e in BODY_STRING_IDS],
)
def test_string_ids_in_a_body_must_be_strings(world, method, path, body, field, value):
    assert_bad_request(
        send(world, method, path, body(VALUES[value])), field, "invalid request body"
    )
    assert Message.objects.count() == 0


@pytest.mark.parametrize("value", PATH_TEXT, ids=PATH_TEXT)
@pytest.mark.parametrize(
    "method, path, body",
    PATH_STRING_IDS,
    ids=[f"{e[0]} {e[1]}" for e in PATH_STRING_IDS],
)
def test_string_ids_in_a_path_name_nothing(world, method, path, body, value):
    response = send(world, method, path, body, v=PATH_TEXT[value])
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"


# Fields §9 gives as strings, each sent the number 123 (DRF's CharField stored "123").
STRINGS = [
    ("post", "/api/chats/", {"title": 123}, "title"),
    ("post", "/api/chats/{chat}/completions", {"prompt": 123}, "prompt"),
    ("post", "/api/channels/", {"name": 123}, "name"),
    ("post", "/api/channels/{cid}/messages/", {"content": 123}, "content"),
    ("patch", "/api/channels/{cid}/messages/{mid}/", {"content": 123}, "content"),
    ("post", "/api/notes/", {"title": 123}, "title"),
    ("post", "/api/notes/", {"title": "t", "content": 123}, "content"),
    ("patch", "/api/notes/{nid}/", {"content": 123}, "content"),
    ("patch", "/api/notes/{nid}/", {"title": 123}, "title"),
    ("post", "/api/realtime/emit/", {"room": 123, "event": "x"}, "room"),
    ("post", "/api/realtime/emit/", {"room": "r", "event": 123}, "event"),
]
# Numbers §9 gives as integer or number refuse strings and booleans too.
NUMBERS = [
    ("post", "/api/chats/{chat}/completions", {"prompt": "x", "tokens": "5"}, "tokens"),
    ("post", "/api/chats/{chat}/completions", {"prompt": "x", "tokens": 5.0}, "tokens"),
    (
        "post",
        "/api/chats/{chat}/completions",
        {"prompt": "x", "tokens_per_second": "50"},
        "tokens_per_second",
    ),
    (
        "post",
        "/api/chats/{chat}/completions",
        {"prompt": "x", "tokens_per_second": True},
        "tokens_per_second",
    ),
    ("post", "/api/channels/{cid}/members/", {"user_id": True}, "user_id"),
]


@pytest.mark.parametrize(
    "method, path, body, field",
    STRINGS + NUMBERS,
    ids=[f"{e[0]} {e[1]}:{e[3]}" for e in STRINGS + NUMBERS],
)
def test_types_are_strict_where_the_docs_give_them(world, method, path, body, field):
    notes_before = list(Note.objects.values_list("id", "title", "content"))
    url = path.replace("{mid}", str(world["mid"]))
    assert_bad_request(send(world, method, url, body), field, "invalid request body")
    assert Message.objects.count() == 0
    assert Chat.objects.count() == 1
    assert ChannelMessage.objects.get(id=world["mid"]).content == "hi"
    assert list(Note.objects.values_list("id", "title", "content")) == notes_before
