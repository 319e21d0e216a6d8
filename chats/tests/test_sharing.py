"""Shared chats: REST to share and revoke, grantees reading the chat, shared copies of
the stream in chat:{id}, and a revoked user out of the room at once."""

import pytest
from channels.db import database_sync_to_async

from chats.emitter import get_event_emitter
from chats.models import ChatGrant, Message
from realtime.dialects import OPENWEBUI
from testing.chat_events import call, chat_events, frame, quiet, users
from testing.factories import api_for, chat_create, chat_shared, users_create

pytestmark = pytest.mark.django_db(transaction=True)


async def join(client, chat) -> dict:
    return await call(client, frame(chat.id, "join"))


@pytest.fixture
def team(make_user):
    return [make_user(name) for name in ("alice", "bob", "carol")]


def share(owner, chat, user_id, permission="read"):
    return api_for(owner).post(
        f"/api/chats/{chat.id}/share/",
        {"user_id": user_id, "permission": permission},
        format="json",
    )


def test_owner_shares_and_revokes_and_grantees_read(team):
    alice, bob, carol = team
    chat = alice.chats.create(title="Plans")
    Message.objects.create(chat=chat, role="user", content="hi", done=True)
    response = share(alice, chat, bob.id, "read")
    assert response.status_code == 200
    assert response.json() == {"grants": {str(bob.id): "read"}}
    assert share(alice, chat, carol.id, "write").json() == {
        "grants": {str(bob.id): "read", str(carol.id): "write"}
    }
    detail = api_for(bob).get(f"/api/chats/{chat.id}/").json()
    assert (detail["title"], detail["access"]) == ("Plans", "read")
    assert [m["content"] for m in detail["messages"]] == ["hi"]
    assert api_for(alice).get(f"/api/chats/{chat.id}/").json()["access"] == "write"
    # Grantees only read: completions and tasks stay the owner's.
    api = api_for(carol)
    post = api.post(f"/api/chats/{chat.id}/completions", {"prompt": "x"}, format="json")
    assert post.status_code == 404
    assert api.get(f"/api/chats/{chat.id}/tasks/").status_code == 404
    revoked = api_for(alice).delete(f"/api/chats/{chat.id}/share/{bob.id}/")
    assert revoked.json() == {"grants": {str(carol.id): "write"}}
    assert api_for(bob).get(f"/api/chats/{chat.id}/").status_code == 404
    assert Message.objects.count() == 1


def test_sharing_refusals_follow_the_error_order(team):
    alice, bob, carol = team
    chat = alice.chats.create()
    share(alice, chat, bob.id, "write")
    cases = [
        # (who, body or None for DELETE, path user, status, code)
        (carol, {"user_id": bob.id, "permission": "read"}, None, 404, "not_found"),
        (bob, {"user_id": carol.id, "permission": "read"}, None, 403, "forbidden"),
        (bob, None, carol.id, 403, "forbidden"),
        (alice, {"user_id": carol.id, "permission": "admin"}, None, 400, "bad_request"),
        (alice, {"user_id": str(carol.id), "permission": "read"}, None, 400, None),
        (alice, {"user_id": 999999, "permission": "read"}, None, 404, "not_found"),
        (alice, {"user_id": alice.id, "permission": "read"}, None, 404, "not_found"),
        (alice, None, carol.id, 404, "not_found"),  # no grant to revoke
        (alice, None, "x1", 400, "bad_request"),
    ]
    for who, body, path_user, status, code in cases:
        if body is None:
            response = api_for(who).delete(f"/api/chats/{chat.id}/share/{path_user}/")
        else:
            response = api_for(who).post(
                f"/api/chats/{chat.id}/share/", body, format="json"
            )
        assert response.status_code == status, (who, body, response.json())
        if code:
            assert response.json()["error"]["code"] == code
    assert dict(ChatGrant.objects.values_list("user_id", "permission")) == {
        bob.id: "write"
    }


async def test_collaborators_get_shared_copies_and_the_owner_no_double(ws):
    alice, bob, carol = await users_create("alice", "bob", "carol")
    chat = await chat_shared(alice, readers=[bob])
    owner_tab, owner_joined = await ws(alice), await ws(alice, protocol=OPENWEBUI)
    reader, outsider = await ws(bob, protocol=OPENWEBUI), await ws(carol)
    await join(owner_joined, chat)
    await join(reader, chat)
    emit = get_event_emitter(alice.id, chat.id, "m1")
    await emit({"type": "message", "data": {"content": "Hel"}})
    plain = {"chat_id": chat.id, "message_id": "m1", "data": {"type": "message"}}
    plain["data"]["data"] = {"content": "Hel"}
    assert await chat_events(owner_tab, "message") == plain
    assert await chat_events(owner_joined, "message") == plain
    assert await chat_events(reader, "message") == {
        **plain,
        "shared": True,
        "user_id": alice.id,
    }
    await emit.close()
    # The owner's joined tab got it once; the outsider nothing.
    assert await quiet(owner_joined, "message")
    assert await quiet(outsider, "message")


async def test_an_unshared_chat_sends_no_copies(ws):
    alice, bob = await users_create("alice", "bob")
    chat = await chat_create(alice)
    tab = await ws(alice)
    await join(tab, chat)
    emit = get_event_emitter(alice.id, chat.id, "m1")
    assert emit.shared is False
    await emit({"type": "message", "data": {"content": "x"}})
    assert emit.shared is False
    await chat_events(tab, "message")
    await emit.close()


async def test_a_revoked_user_leaves_the_room_at_once(ws):
    alice, bob, carol = await users_create("alice", "bob", "carol")
    chat = await chat_shared(alice, writers=[bob, carol])
    a, b = await ws(alice), await ws(bob)
    b_owui = await ws(bob, protocol=OPENWEBUI)
    c = await ws(carol)
    for client in (a, b, b_owui, c):
        await join(client, chat)
    for _ in range(4):
        presence = await chat_events(a, "chat:presence")
    assert presence["data"]["data"]["users"] == users(alice, bob, carol)
    await chat_events(c, "chat:presence")  # carol's own join's

    def revoke():
        return api_for(alice).delete(f"/api/chats/{chat.id}/share/{bob.id}/")

    assert (await database_sync_to_async(revoke)()).status_code == 200
    for client in (a, c):
        presence = await chat_events(client, "chat:presence")
        assert presence["data"]["data"]["users"] == users(alice, carol)
    assert await b.event("chat:access") == {"chat_id": chat.id, "permission": None}
    reply = await call(b, frame(chat.id, "typing", {"typing": True}))
    assert reply["error"]["code"] == "forbidden"
    # Open WebUI's tab: false (its page reloads and joins again, which is refused).
    reply = await call(b_owui, frame(chat.id, "typing", {"typing": True}))
    assert reply["data"] is False
    assert (await join(b_owui, chat))["data"] is False
    assert await quiet(a, "typing")
    # Streams no longer reach bob.
    emit = get_event_emitter(alice.id, chat.id, "m2")
    await emit({"type": "message", "data": {"content": "x"}})
    assert (await chat_events(c, "message"))["shared"] is True
    assert await quiet(b, "message") and await quiet(b_owui, "message")
    await emit.close()


async def test_a_changed_grant_needs_a_new_join(ws):
    alice, bob = await users_create("alice", "bob")
    chat = await chat_shared(alice, writers=[bob])
    b = await ws(bob)
    await join(b, chat)
    await database_sync_to_async(share)(alice, chat, bob.id, "read")
    assert await b.event("chat:access") == {"chat_id": chat.id, "permission": "read"}
    assert (await join(b, chat))["data"] is True
    reply = await call(b, frame(chat.id, "typing", {"typing": True}))
    assert reply["error"] == {
        "code": "forbidden",
        "message": "read-only access to this chat",
    }
