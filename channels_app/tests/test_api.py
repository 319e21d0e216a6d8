"""REST for channels: membership rules, messages, unread counts, bad input."""

import pytest

from channels_app.models import Channel, ChannelMember, ChannelMessage
from testing.factories import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


def create(api, **body):
    response = api.post("/api/channels/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_creator_becomes_owner_and_members_are_added(trio):
    alice, bob, _ = trio
    channel = create(api_for(alice), name="general", member_ids=[bob.id])
    assert channel["member_ids"] == sorted([alice.id, bob.id])
    roles = dict(ChannelMember.objects.values_list("user_id", "role"))
    assert roles == {alice.id: "owner", bob.id: "member"}


def test_direct_channel_is_unique_per_pair(trio):
    alice, bob, carol = trio
    first = create(api_for(alice), kind="direct", member_ids=[bob.id])
    again = create(api_for(bob), kind="direct", member_ids=[alice.id])
    assert first["id"] == again["id"]
    bad = api_for(alice).post(
        "/api/channels/",
        {"kind": "direct", "member_ids": [bob.id, carol.id]},
        format="json",
    )
    assert bad.status_code == 400


def test_non_members_get_404_everywhere(trio):
    alice, bob, carol = trio
    channel = create(api_for(alice), name="secret", member_ids=[bob.id])
    cid = channel["id"]
    message = (
        api_for(alice).post(f"/api/channels/{cid}/messages/", {"content": "hi"}).json()
    )
    outsider = api_for(carol)
    for method, path, body in [
        ("get", f"/api/channels/{cid}/", None),
        ("get", f"/api/channels/{cid}/messages/", None),
        ("post", f"/api/channels/{cid}/messages/", {"content": "let me in"}),
        ("patch", f"/api/channels/{cid}/messages/{message['id']}/", {"content": "x"}),
        ("delete", f"/api/channels/{cid}/messages/{message['id']}/", None),
        ("post", f"/api/channels/{cid}/members/", {"user_id": carol.id}),
        ("post", f"/api/channels/{cid}/read/", None),
    ]:
        response = getattr(outsider, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    assert ChannelMessage.objects.count() == 1
    assert ChannelMember.objects.filter(user=carol).count() == 0


def test_only_owner_or_admin_manage_members(trio):
    alice, bob, carol = trio
    cid = create(api_for(alice), name="team", member_ids=[bob.id])["id"]
    refused = api_for(bob).post(f"/api/channels/{cid}/members/", {"user_id": carol.id})
    assert refused.status_code == 403
    added = api_for(alice).post(f"/api/channels/{cid}/members/", {"user_id": carol.id})
    assert added.status_code == 201
    assert (
        api_for(bob).delete(f"/api/channels/{cid}/members/{carol.id}/").status_code
        == 403
    )
    assert (
        api_for(carol).delete(f"/api/channels/{cid}/members/{carol.id}/").status_code
        == 204
    )
    assert (
        api_for(alice).delete(f"/api/channels/{cid}/members/{alice.id}/").status_code
        == 400
    )


def test_messages_post_edit_delete_and_page_newest_first(trio):
    alice, bob, _ = trio
    cid = create(api_for(alice), name="t", member_ids=[bob.id])["id"]
    ids = [
        api_for(alice)
        .post(f"/api/channels/{cid}/messages/", {"content": f"m{i}"})
        .json()["id"]
        for i in range(5)
    ]
    page = api_for(bob).get(f"/api/channels/{cid}/messages/?limit=2").json()
    assert [m["id"] for m in page] == ids[::-1][:2]
    older = api_for(bob).get(
        f"/api/channels/{cid}/messages/?limit=2&before={page[-1]['id']}"
    )
    assert [m["id"] for m in older.json()] == ids[::-1][2:4]
    assert (
        api_for(bob)
        .patch(
            f"/api/channels/{cid}/messages/{ids[0]}/",
            {"content": "mine now"},
            format="json",
        )
        .status_code
        == 403
    )
    edited = api_for(alice).patch(
        f"/api/channels/{cid}/messages/{ids[0]}/", {"content": "fixed"}, format="json"
    )
    assert edited.json()["content"] == "fixed" and edited.json()["edited_at"]
    assert (
        api_for(bob).delete(f"/api/channels/{cid}/messages/{ids[0]}/").status_code
        == 403
    )
    assert (
        api_for(alice).delete(f"/api/channels/{cid}/messages/{ids[0]}/").status_code
        == 204
    )
    assert ChannelMessage.objects.get(id=ids[0]).deleted_at is not None
    assert (
        api_for(alice).delete(f"/api/channels/{cid}/messages/{ids[0]}/").status_code
        == 404
    )


def test_unread_counts(trio):
    alice, bob, _ = trio
    cid = create(api_for(alice), name="t", member_ids=[bob.id])["id"]
    for i in range(3):
        api_for(alice).post(f"/api/channels/{cid}/messages/", {"content": f"m{i}"})

    def unread(user):
        return {
            c["id"]: c["unread_count"]
            for c in api_for(user).get("/api/channels/").json()
        }

    assert unread(bob) == {cid: 3}
    assert unread(alice) == {cid: 0}  # her own messages
    api_for(bob).post(f"/api/channels/{cid}/read/")
    assert unread(bob) == {cid: 0}
    mid = (
        api_for(alice)
        .post(f"/api/channels/{cid}/messages/", {"content": "new"})
        .json()["id"]
    )
    assert unread(bob) == {cid: 1}
    api_for(alice).delete(f"/api/channels/{cid}/messages/{mid}/")
    assert unread(bob) == {cid: 0}


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/channels/", {"kind": "huge"}),
        ("/api/channels/", {"member_ids": "everyone"}),
        ("/api/channels/", {"member_ids": [999999]}),
        ("/api/channels/{cid}/messages/", {"content": ""}),
        ("/api/channels/{cid}/messages/", {"content": "   "}),
        ("/api/channels/{cid}/messages/", {"content": "x" * 20_001}),
        ("/api/channels/{cid}/messages/", {"content": "reply", "parent_id": 999999}),
        ("/api/channels/{cid}/members/", {"user_id": "bob"}),
        ("/api/channels/{cid}/members/", {"user_id": 999999}),
    ],
)
def test_bad_bodies(trio, path, body):
    alice, bob, _ = trio
    cid = create(api_for(alice), name="t", member_ids=[bob.id])["id"]
    response = api_for(alice).post(path.format(cid=cid), body, format="json")
    assert response.status_code in (400, 404), response.status_code
    assert response.json()["error"]["code"] in ("bad_request", "not_found")
    assert ChannelMessage.objects.count() == 0
    assert Channel.objects.count() == 1


@pytest.mark.parametrize("raw", [False, True], ids=["bad-field", "not-json"])
def test_the_path_is_checked_before_the_body_on_every_endpoint(trio, raw):
    # docs §9: 404 for a channel or message the caller cannot see, then 403 for
    # what they may not do, then 400 for the body; so a bad body never tells
    # whether someone else's channel exists.
    alice, bob, carol = trio
    cid = create(api_for(alice), name="team", member_ids=[bob.id])["id"]
    mid = (
        api_for(alice)
        .post(f"/api/channels/{cid}/messages/", {"content": "hi"}, format="json")
        .json()["id"]
    )
    endpoints = [
        ("post", f"/api/channels/{cid}/members/", {"user_id": "x"}, 403),
        ("post", f"/api/channels/{cid}/messages/", {"content": ""}, 400),
        ("patch", f"/api/channels/{cid}/messages/{mid}/", {"content": ""}, 403),
        ("post", f"/api/channels/{cid}/messages/{mid}/reactions/", {"name": ""}, 400),
    ]
    for method, path, body, as_bob in endpoints:
        for user, expected in ((carol, 404), (bob, as_bob), (alice, 400)):
            client = api_for(user)
            if raw:
                response = client.generic(
                    method.upper(), path, "{nope", content_type="application/json"
                )
            else:
                response = getattr(client, method)(path, body, format="json")
            assert response.status_code == expected, (user.username, path)
            assert "error" in response.json()
    assert ChannelMember.objects.filter(channel_id=cid).count() == 2
    assert ChannelMessage.objects.get(id=mid).content == "hi"
