"""The admin: live sessions, models in use, online users and the apps' models render
on both stores, and the disconnect action closes a live socket."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client as HttpClient

pytestmark = pytest.mark.django_db(transaction=True)

APP_PAGES = [
    "chats/chat/",
    "chats/message/",
    "channels_app/channel/",
    "channels_app/channelmember/",
    "channels_app/channelmessage/",
    "notes/note/",
    "notes/notegrant/",
    "realtime/user/",
]


async def _setup(make_user):
    make = database_sync_to_async(make_user)
    staff = await make("root", is_staff=True, is_superuser=True)
    alice, bob = await make("alice"), await make("bob")
    http = HttpClient()
    await sync_to_async(http.force_login)(staff)
    return http, alice, bob


async def get(http, path: str) -> str:
    response = await sync_to_async(http.get)(f"/admin/{path}")
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


async def test_admin_pages_render_live_state(backend, ws, make_user):
    http, alice, bob = await _setup(make_user)
    a = await ws(alice, join=True)
    await a.call("usage", {"model": "llama3"})
    await a.call("heartbeat")
    page = await get(http, "realtime/livesession/")
    assert "1 live session on 1 instance" in page
    assert a.sid in page and f"alice ({alice.id})" in page and "presence" in page
    page = await get(http, "realtime/modelinuse/")
    assert "llama3" in page and f"alice ({a.sid})" in page
    # Online status: alice is online, bob is not.
    page = await get(http, "realtime/user/?o=1")
    rows = {
        name: row
        for row in page.split("<tr")
        for name in ("alice", "bob")
        if f">{name}</a>" in row
    }
    assert 'alt="True"' in rows["alice"].split("field-is_online")[1][:80]
    assert 'alt="False"' in rows["bob"].split("field-is_online")[1][:80]
    for path in APP_PAGES:
        await get(http, path)
    index = await get(http, "")
    assert "Live sessions" in index and "Models in use" in index


async def test_admin_disconnect_action_closes_the_socket(backend, ws, make_user):
    http, alice, bob = await _setup(make_user)
    a = await ws(alice)
    b = await ws(bob)
    response = await sync_to_async(http.post)(
        "/admin/realtime/livesession/",
        {"action": "disconnect", "sid": [a.sid]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Disconnecting 1 of 1 selected sessions." in response.content.decode()
    assert await a.event("disconnect") == {"reason": "disconnected by an admin"}
    assert await a.closed_code() == 4401
    assert await b.nothing()
    page = await get(http, "realtime/livesession/")
    assert a.sid not in page and b.sid in page


async def test_live_pages_are_for_staff_only(ws, make_user):
    make = database_sync_to_async(make_user)
    user = await make("plain")
    http = HttpClient()
    await sync_to_async(http.force_login)(user)
    response = await sync_to_async(http.get)("/admin/realtime/livesession/")
    assert response.status_code == 302  # to the admin login


def test_index_lists_users_under_auth_and_every_app_by_its_name(make_user):
    http = HttpClient()
    http.force_login(make_user("root", is_staff=True, is_superuser=True))
    response = http.get("/admin/")
    sections = {
        app["name"]: sorted(m["object_name"] for m in app["models"])
        for app in response.context["app_list"]
    }
    assert sections == {
        "Authentication and Authorization": ["Group", "User"],
        "Channels": ["Channel", "ChannelMember", "ChannelMessage"],
        "Chats": ["Chat", "Message"],
        "Notes": ["Note", "NoteGrant"],
        "Real-time": ["LiveSession", "ModelInUse"],
    }
    # Each app's own page agrees with the index.
    auth = http.get("/admin/auth/").context["app_list"]
    assert [m["object_name"] for m in auth[0]["models"]] == ["Group", "User"]
    realtime = http.get("/admin/realtime/").context["app_list"]
    assert [m["object_name"] for m in realtime[0]["models"]] == [
        "LiveSession",
        "ModelInUse",
    ]
