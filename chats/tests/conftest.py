import pytest

from chats.writecount import MessageWriteCounter


@pytest.fixture
def message_writes():
    """Counts real UPDATE/INSERT statements on chats_message, in every thread. The
    tests close connections after each call, so every query runs on a new one."""
    counter = MessageWriteCounter().start()
    yield counter
    counter.stop()
