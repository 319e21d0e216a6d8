"""The chat admin lists who a chat is shared with, and changes no grant itself."""

import pytest
from django.test import Client as HttpClient

from chats import services

pytestmark = pytest.mark.django_db


def test_chat_page_shows_its_grants_read_only(make_user):
    staff = make_user("root", is_staff=True, is_superuser=True)
    alice, bob = make_user("alice"), make_user("bob")
    chat = alice.chats.create(title="Plans")
    services.chat_grant(chat=chat, user_id=bob.id, permission="read")
    http = HttpClient()
    http.force_login(staff)
    page = http.get(f"/admin/chats/chat/{chat.id}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "bob" in text.lower() and "read" in text
    assert 'name="grants-0-permission"' not in text  # shown, not editable
    assert 'name="grants-MAX_NUM_FORMS" value="0"' in text  # none can be added
