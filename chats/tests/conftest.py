import pytest
from channels.db import database_sync_to_async
from django.db.backends.signals import connection_created

from chats.models import Chat


@pytest.fixture
def message_writes():
    """Counts real UPDATE/INSERT statements on chats_message, in every thread."""
    counts = {"n": 0}

    def count(execute, sql, params, many, context):
        statement = sql.lstrip().upper()
        if statement.startswith(("UPDATE", "INSERT")) and "CHATS_MESSAGE" in statement:
            counts["n"] += len(params) if many else 1  # executemany: one per row
        return execute(sql, params, many, context)

    def install(sender, connection, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    # The tests close connections after each call, so every query runs on a new one.
    connection_created.connect(install)
    yield counts
    connection_created.disconnect(install)


@pytest.fixture
def make_chat():
    """Create a chat for a user (async)."""

    async def make(owner, title="New Chat"):
        return await database_sync_to_async(Chat.objects.create)(
            owner=owner, title=title
        )

    return make
