"""REST endpoints of the core and their one error shape."""

import pytest
from rest_framework.test import APIClient

from testing.factories import token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def auth(api, user):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return api


def test_token_pair_and_refresh(api, make_user):
    make_user("alice")
    response = api.post(
        "/api/auth/token/",
        {"username": "alice", "password": "alice-pass"},
        format="json",
    )
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    refreshed = api.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200 and "access" in refreshed.json()


def _refresh_for(api, username):
    response = api.post(
        "/api/auth/token/",
        {"username": username, "password": f"{username}-pass"},
        format="json",
    )
    return response.json()["refresh"]


def test_refresh_after_password_change_is_unauthorized(api, make_user):
    alice = make_user("alice")
    refresh = _refresh_for(api, "alice")
    alice.set_password("changed-password")
    alice.save()
    response = api.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "unauthorized",
        "message": "token was revoked by a password change",
    }


@pytest.mark.parametrize("change", ["deactivate", "delete"])
def test_refresh_for_inactive_or_deleted_user_is_unauthorized(api, make_user, change):
    alice = make_user("alice")
    refresh = _refresh_for(api, "alice")
    if change == "delete":
        alice.delete()
    else:
        alice.is_active = False
        alice.save()
    response = api.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_refresh_with_garbage_is_unauthorized(api):
    response = api.post("/api/auth/token/refresh/", {"refresh": "x.y.z"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "unauthorized",
        "message": "token is invalid or expired",
    }


def test_wrong_password_is_unauthorized_in_the_error_shape(api, make_user):
    make_user("alice")
    response = api.post(
        "/api/auth/token/", {"username": "alice", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_token_body_missing_fields_is_bad_request(api):
    response = api.post("/api/auth/token/", {"username": "x"}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "bad_request" and "password" in body["details"]


def test_me(api, make_user):
    alice = make_user("alice", name="Alice", role="admin")
    response = auth(api, alice).get("/api/me/")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "username", "name", "role", "online")} == {
        "id": alice.id,
        "username": "alice",
        "name": "Alice",
        "role": "admin",
        "online": False,
    }


def test_user_list_names_active_users(api, make_user):
    alice = make_user("alice", name="Alice A")
    bob = make_user("bob", name="")
    make_user("gone", is_active=False)
    assert api.get("/api/users/").status_code == 401
    response = auth(api, alice).get("/api/users/")
    assert response.status_code == 200
    assert response.json() == [
        {"id": alice.id, "username": "alice", "name": "Alice A"},
        {"id": bob.id, "username": "bob", "name": "bob"},
    ]


def test_me_without_token_is_unauthorized(api):
    response = api.get("/api/me/")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "unauthorized",
            "message": "Authentication credentials were not provided.",
        }
    }


def test_me_with_garbage_token_is_unauthorized(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    response = api.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_emit_api_is_for_admins_only(api, make_user):
    response = auth(api, make_user("bob")).post(
        "/api/realtime/emit/", {"room": "r", "event": "e"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"event": "e"},
        {"room": "r", "user_id": 1, "event": "e"},
        {"room": "r"},
        {"room": "r", "event": "x" * 129},
        {"user_id": "abc", "event": "e"},
    ],
)
def test_emit_api_bad_bodies(api, make_user, body):
    response = auth(api, make_user("root", role="admin")).post(
        "/api/realtime/emit/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_emit_api_unknown_session_is_not_found(api, make_user):
    admin = make_user("root", role="admin")
    response = auth(api, admin).post(
        "/api/realtime/emit/", {"sid": "nope", "event": "e"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_api_path_is_not_found_in_the_error_shape(api, method):
    response = getattr(api, method)("/api/no/such/thing/")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "no such endpoint"}
    }


def test_wrong_method_is_bad_request_in_the_error_shape(api, make_user):
    response = auth(api, make_user()).delete("/api/me/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "bad_request"


def test_disconnect_api_for_admins_only(api, make_user):
    target = make_user("target")
    response = auth(api, make_user("bob")).post(f"/api/users/{target.id}/disconnect/")
    assert response.status_code == 403
    response = auth(APIClient(), make_user("root", role="admin")).post(
        f"/api/users/{target.id}/disconnect/"
    )
    assert response.status_code == 202


def test_healthz_needs_no_auth(api):
    response = api.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_index_page_points_to_the_socket(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"/ws/" in response.content
