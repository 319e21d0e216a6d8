"""REST for chats, completions and tasks."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from chats.models import Chat, Message
from realtime import tasks
from testing.factories import api_for, chat_create, token_for


class AuthedAsyncClient:
    """Django's AsyncClient with a bearer token on every request."""

    def __init__(self, user) -> None:
        self.client = AsyncClient()
        self.headers = {"Authorization": f"Bearer {token_for(user)}"}

    async def get(self, path):
        return await self.client.get(path, headers=self.headers)

    async def post(self, path, body=None):
        return await self.client.post(
            path, body or {}, content_type="application/json", headers=self.headers
        )


@pytest.mark.django_db
def test_create_list_and_get_chats(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    api = api_for(alice)
    created = api.post("/api/chats/", {"title": "Plans"}, format="json")
    assert created.status_code == 201
    chat_id = created.json()["id"]
    Message.objects.create(chat_id=chat_id, role="user", content="hi", message_id="q1")
    assert [c["id"] for c in api.get("/api/chats/").json()] == [chat_id]
    detail = api.get(f"/api/chats/{chat_id}/").json()
    assert detail["title"] == "Plans"
    assert [(m["message_id"], m["content"]) for m in detail["messages"]] == [
        ("q1", "hi")
    ]
    assert api_for(bob).get("/api/chats/").json() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, method",
    [
        ("/api/chats/{id}/", "get"),
        ("/api/chats/{id}/completions", "post"),
        ("/api/chats/{id}/tasks/", "get"),
    ],
)
def test_someone_elses_or_missing_chat_is_404(make_user, path, method):
    owner, intruder = make_user("owner"), make_user("intruder")
    chat = Chat.objects.create(owner=owner)
    for chat_id in (chat.id, "no-such-chat"):
        response = getattr(api_for(intruder), method)(
            path.format(id=chat_id), {"prompt": "x"}, format="json"
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert Message.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": 5, "tokens": "many"},
        {"prompt": "x", "tokens": 0},
        {"prompt": "x", "model": "gpt-9"},
        {"prompt": "x", "tokens_per_second": -1},
    ],
)
def test_bad_completion_bodies_are_400(make_user, body):
    user = make_user()
    chat = Chat.objects.create(owner=user)
    response = api_for(user).post(
        f"/api/chats/{chat.id}/completions", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_bad_body_for_someone_elses_chat_is_still_404(make_user):
    owner, intruder = make_user("owner"), make_user("intruder")
    chat = Chat.objects.create(owner=owner)
    response = api_for(intruder).post(
        f"/api/chats/{chat.id}/completions", {}, format="json"
    )
    assert response.status_code == 404


@pytest.mark.django_db
def test_blank_title_falls_back_to_default(make_user):
    response = api_for(make_user()).post("/api/chats/", {"title": ""}, format="json")
    assert (response.status_code, response.json()["title"]) == (201, "New Chat")


@pytest.mark.django_db
def test_chat_title_too_long_is_400(make_user):
    response = api_for(make_user()).post(
        "/api/chats/", {"title": "x" * 300}, format="json"
    )
    assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_completion_streams_to_the_user_and_is_stored(ws, make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    tab = await ws(user)
    client = AuthedAsyncClient(user)
    response = await client.post(
        f"/api/chats/{chat.id}/completions",
        {"prompt": "hello there", "tokens": 8, "tokens_per_second": 200},
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"task_id", "chat_id", "message_id"}
    listed = await client.get("/api/tasks/")
    assert [t["id"] for t in listed.json()] == [body["task_id"]]
    (task,) = listed.json()
    assert task["item_id"] == chat.id
    # Unix time in seconds, a number (not an ISO string).
    assert type(task["created_at"]) is float
    assert abs(task["created_at"] - time.time()) < 60
    kinds, pieces = [], []
    while "chat:completion" not in kinds:
        event = (await tab.event("events"))["data"]
        kinds.append(event["type"])
        if event["type"] == "message":
            pieces.append(event["data"]["content"])
    # The prompt first (every tab shows it), then the answer's events.
    assert kinds[:4] == ["chat:message", "status", "source", "status"]
    assert len(pieces) == 8
    await asyncio.sleep(0.05)
    answer = await database_sync_to_async(Message.objects.get)(
        chat=chat, message_id=body["message_id"]
    )
    assert (answer.content, answer.done, answer.role) == (
        "".join(pieces),
        True,
        "assistant",
    )
    assert len(answer.status_history) == 3 and len(answer.sources) == 1
    chat = await database_sync_to_async(Chat.objects.get)(pk=chat.id)
    assert chat.title == "Hello there"
    assert await tasks.list_tasks() == []


@pytest.mark.django_db(transaction=True)
async def test_stop_my_task_but_not_someone_elses(make_user):
    user = await database_sync_to_async(make_user)()
    other = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    mine, theirs = AuthedAsyncClient(user), AuthedAsyncClient(other)
    started = await mine.post(
        f"/api/chats/{chat.id}/completions",
        {"prompt": "long", "tokens": 1000, "tokens_per_second": 50},
    )
    task_id = started.json()["task_id"]
    assert (await theirs.get("/api/tasks/")).json() == []
    refused = await theirs.post(f"/api/tasks/{task_id}/stop")
    assert refused.status_code == 404
    assert (await mine.get(f"/api/chats/{chat.id}/tasks/")).json() == {
        "task_ids": [task_id]
    }
    stopped = await mine.post(f"/api/tasks/{task_id}/stop")
    assert (stopped.status_code, stopped.json()) == (200, {"stopped": True})
    assert (await mine.post(f"/api/tasks/{task_id}/stop")).status_code == 404
    # After a reload the answer still says it was stopped, and by whom.
    prompt, answer = (await mine.get(f"/api/chats/{chat.id}/")).json()["messages"]
    assert (prompt["state"], prompt["stop_reason"], prompt["done"]) == (
        "done",
        None,
        True,
    )
    assert (answer["state"], answer["stop_reason"], answer["done"]) == (
        "stopped",
        "user",
        False,
    )


@pytest.mark.django_db(transaction=True)
async def test_a_titled_chat_keeps_its_title(ws, make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user, title="Mine")
    tab = await ws(user)
    client = AuthedAsyncClient(user)
    await client.post(
        f"/api/chats/{chat.id}/completions", {"prompt": "rename me", "tokens": 2}
    )
    while (await tab.event("events"))["data"]["type"] != "chat:completion":
        pass
    await asyncio.sleep(0.05)
    assert (await database_sync_to_async(Chat.objects.get)(pk=chat.id)).title == "Mine"


@pytest.mark.django_db(transaction=True)
async def test_a_trailing_slash_on_completions_or_stop_is_no_endpoint(make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    client = AuthedAsyncClient(user)
    body = {"prompt": "long", "tokens": 1000, "tokens_per_second": 50}
    refused = await client.post(f"/api/chats/{chat.id}/completions/", body)
    assert (refused.status_code, refused.json()["error"]) == (
        404,
        {"code": "not_found", "message": "no such endpoint"},
    )
    assert await tasks.list_tasks() == []
    assert await database_sync_to_async(Message.objects.count)() == 0
    task_id = (await client.post(f"/api/chats/{chat.id}/completions", body)).json()[
        "task_id"
    ]
    refused = await client.post(f"/api/tasks/{task_id}/stop/")
    assert refused.status_code == 404
    assert refused.json()["error"]["message"] == "no such endpoint"
    assert [t.task_id for t in await tasks.list_tasks()] == [task_id]
    assert (await client.post(f"/api/tasks/{task_id}/stop")).json() == {"stopped": True}


async def until_no_task(client) -> None:
    """Wait for the user's generations to end."""
    for _ in range(200):
        if (await client.get("/api/tasks/")).json() == []:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the generation did not end")


@pytest.mark.django_db(transaction=True)
async def test_a_follow_up_prompt_goes_under_the_previous_answer(make_user):
    user = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    client = AuthedAsyncClient(user)
    fast = {"tokens": 2, "tokens_per_second": 1000}
    answers = []
    for prompt in ("first question", "second question"):
        started = await client.post(
            f"/api/chats/{chat.id}/completions", {"prompt": prompt, **fast}
        )
        answers.append(started.json()["message_id"])
        await until_no_task(client)
    messages = (await client.get(f"/api/chats/{chat.id}/")).json()["messages"]
    # One thread, in order: each message's parent is the one before it.
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert [m["parent_id"] for m in messages] == [None] + [
        m["message_id"] for m in messages[:-1]
    ]
    assert [messages[1]["message_id"], messages[3]["message_id"]] == answers
    assert messages[2]["content"] == "second question"


@pytest.mark.django_db(transaction=True)
async def test_the_prompt_reaches_every_session_of_the_user(ws, make_user):
    user = await database_sync_to_async(make_user)()
    other = await database_sync_to_async(make_user)()
    chat = await chat_create(user)
    sender, other_tab, stranger = await ws(user), await ws(user), await ws(other)
    client = AuthedAsyncClient(user)
    started = await client.post(
        f"/api/chats/{chat.id}/completions",
        {"prompt": "hello everyone", "tokens": 2, "tokens_per_second": 1000},
    )
    await until_no_task(client)
    stored = (await client.get(f"/api/chats/{chat.id}/")).json()["messages"]
    prompt = stored[0]
    for tab in (sender, other_tab):
        # The prompt comes first, as Open WebUI's chat:message: the stored message.
        first = await tab.event("events")
        assert first == {
            "chat_id": chat.id,
            "message_id": prompt["message_id"],
            "data": {"type": "chat:message", "data": {**prompt}},
        }
        assert first["data"]["data"]["role"] == "user"
        answer = await tab.event("events")
        assert answer["message_id"] == started.json()["message_id"]
    assert await stranger.nothing(0.2)
