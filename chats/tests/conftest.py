import pytest
from channels.db import database_sync_to_async

from chats.models import Chat
from chats.writecount import MessageWriteCounter


@pytest.fixture
def message_writes():
    """Counts real UPDATE/INSERT statements on chats_message, in every thread. The
    tests close connections after each call, so every query runs on a new one."""
    counter = MessageWriteCounter().start()
    yield counter
    counter.stop()


@pytest.fixture
def make_chat():
    """Create a chat for a user (async)."""

    async def make(owner, title="New Chat"):
        return await database_sync_to_async(Chat.objects.create)(
            owner=owner, title=title
        )

    return make
