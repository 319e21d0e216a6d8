"""REST for notes: the order of the checks and strict bodies."""

import pytest

from notes import services
from testing.factories import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("owner", "reader", "stranger")}


@pytest.fixture
def note(people):
    note = services.note_create(owner=people["owner"], title="Plan", content="Hello")
    services.note_grant(note=note, user_id=people["reader"].id, permission="read")
    return note


@pytest.mark.parametrize("raw", [False, True], ids=["bad-field", "not-json"])
def test_the_path_is_checked_before_the_body(people, note, raw):
    # docs §9: 404 for a note the caller cannot read, then 403 for what they may
    # not do, then 400 for the body.
    endpoints = [
        ("patch", f"/api/notes/{note.id}/", {"title": ""}),
        ("post", f"/api/notes/{note.id}/share/", {"user_id": "x"}),
    ]
    for method, path, body in endpoints:
        for name, expected in (("stranger", 404), ("reader", 403), ("owner", 400)):
            client = api_for(people[name])
            if raw:
                response = client.generic(
                    method.upper(), path, "{nope", content_type="application/json"
                )
            else:
                response = getattr(client, method)(path, body, format="json")
            assert response.status_code == expected, (name, path)
            assert "error" in response.json()
    note.refresh_from_db()
    assert (note.title, note.content) == ("Plan", "Hello")
