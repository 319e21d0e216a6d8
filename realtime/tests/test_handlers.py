"""The core's client events (realtime/handlers.py) where they hold more than a call
into the state store."""

import pytest
from channels.db import database_sync_to_async

from realtime.state import get_state

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def pair(make_user):
    make = database_sync_to_async(make_user)
    return await make("alice"), await make("bob")


async def test_an_overtaken_user_list_answer_is_followed_by_a_fresh_one(
    ws, pair, monkeypatch
):
    """The answer was read before bob came online, and the broadcast of his coming
    (read after) reached the client before the answer: the client would keep the
    older list. A fresh user-list follows the answer."""
    alice, bob = pair
    client = await ws(alice)
    await ws(bob)
    state = get_state()
    real = state.online_user_ids
    reads = []

    async def stale_first():
        reads.append(1)
        return {alice.id} if len(reads) == 1 else await real()

    monkeypatch.setattr(state, "online_user_ids", stale_first)
    reply = await client.call("user-list")
    assert reply["data"] == {"user_ids": [alice.id]}
    assert await client.event("user-list") == {"user_ids": sorted([alice.id, bob.id])}


async def test_an_answer_that_still_holds_is_not_repeated(ws, pair):
    alice, bob = pair
    client = await ws(alice)
    await ws(bob)
    reply = await client.call("user-list")
    assert reply["data"] == {"user_ids": sorted([alice.id, bob.id])}
    assert await client.nothing(0.3)
