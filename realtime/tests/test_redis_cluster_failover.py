"""Redis Cluster under two real server processes: a primary killed mid-stream, and
slots migrated while streams and room traffic run. Each test has a cluster of its own
(tests/test_sentinel.py is the same for Sentinel)."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from redis.crc import key_slot

from chats.fake_model import fake_tokens
from chats.models import Message
from realtime.launcher import Fleet
from realtime.settings import redis_channel_layer
from realtime.state import RedisState, get_state
from realtime.state.redis.history import room_tag
from realtime.worker.base import LOCK_NAME
from testing.clients import RealSocket, SocketClient
from testing.cluster import ARTIFACTS, channel_over_rest, cluster_env, http_post
from testing.factories import chat_create, token_for
from testing.observers import LeaderWatch, Recorder
from testing.recovery import PROMPT, completion_start
from testing.redis_cluster import RedisClusterProcesses

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# Short, so that "one leader again within WORKER_LOCK_TIMEOUT" is seconds.
WORKER_LOCK_TIMEOUT = 4.0
# Longer than three failovers (NODE_TIMEOUT_MS, then an election: 3-5 s here; see
# realtime.launcher_cluster's INSTANCE_TTL_PER_NODE_TIMEOUT). With the test default
# of 2 s every instance's liveness lapses while the membership slot has no primary,
# and the first hub or worker to reach the promoted replica reaps the others before
# they re-register: their sockets miss what is sent meanwhile (seen: 32 and 109 of
# 160 pieces). With 10 s it still happened in about one run of ten, when a renewal
# hung through the failover and the next came a third of the TTL later.
INSTANCE_TTL = 20.0
# Stream pieces a client may miss across a failover: what was in flight when the
# primary died (in its memory, or acknowledged and not yet copied to the replica:
# replication is asynchronous). What comes while the slot has no primary waits and
# arrives late. Measured at 20 pieces/s: 0 or 1 per run.
LOST_IN_GAP = 3
TOKENS_PER_SECOND = 20.0
# Seconds between the steps of a slot's migration: long enough that the stream and
# the room traffic meet each slot while it migrates (ASK) and after (MOVED).
MOVE_PAUSE = 0.25


@pytest.fixture
def nodes():
    """A Redis Cluster of this test's own: it kills or reshards nodes."""
    cluster = RedisClusterProcesses().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def instances(nodes, redis_prefix, settings, request):
    """Two uvicorn instances on the cluster, each with its in-process worker (they
    compete for the leader lock); this process's state and layer use it too."""
    # Every node a startup node, as REDIS_CLUSTER_NODES: REDIS_URL's may be the one
    # a test kills.
    every_node = [("127.0.0.1", port) for port in nodes.ports]
    settings.REDIS_URL = nodes.url
    settings.REDIS_CLUSTER = True
    settings.REDIS_CLUSTER_NODES = every_node
    settings.REDIS_KEY_PREFIX = redis_prefix
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url=nodes.url,
            sentinels=[],
            master="",
            prefix=redis_prefix,
            cluster=True,
            nodes=every_node,
        )
    }
    env = {
        **cluster_env(redis_prefix, settings.SECRET_KEY),
        **nodes.fleet_env(),
        "WORKER_INTERVAL": "0.5",
        "WORKER_LOCK_TIMEOUT": str(WORKER_LOCK_TIMEOUT),
        "INSTANCE_TTL": str(INSTANCE_TTL),
    }
    with Fleet(
        env=env,
        servers=["uvicorn", "uvicorn"],
        worker=False,
        log_dir=ARTIFACTS,
        name=request.node.name,
    ) as fleet:
        yield fleet.instances


@pytest.fixture
async def observe():
    """Start observers (testing.observers) that stop at the end, failed or not."""
    made = []

    def start(observer):
        made.append(observer)
        return observer

    yield start
    for observer in made:
        await observer.stop()


async def recorded(observe, server, user) -> Recorder:
    """A joined socket of `user` on `server`, every frame it receives recorded."""
    client = await SocketClient.open(RealSocket(server.ws), user, join=True)
    return observe(Recorder(client))


def diverging(pieces: list[str], full: list[str], tab: Recorder, mid: str) -> str:
    """Where the received pieces stop following the text, with their positions."""
    at = next(
        (i for i, (a, b) in enumerate(zip(pieces, full, strict=False)) if a != b), None
    )
    frames = [
        (f["offset"], f["data"]["data"].get("type"))
        for f in tab.frames
        if f.get("event") == "events" and f["data"]["message_id"] == mid
    ]
    return f"{len(pieces)} pieces, first different at {at}; frames {frames}"


@database_sync_to_async
def message_row(chat, message_id) -> Message:
    return Message.objects.get(chat=chat, message_id=message_id)


async def until_done(chat, message_id, timeout: float) -> Message:
    deadline = time.monotonic() + timeout
    while not (row := await message_row(chat, message_id)).done:
        assert time.monotonic() < deadline, (row.content[-40:], row.state)
        await asyncio.sleep(0.1)
    return row


async def test_killing_a_primary_mid_stream(
    nodes, instances, redis_prefix, people, observe
):
    alice, bob = people["alice"], people["bob"]
    chat = await chat_create(alice)
    tokens = 160
    full = fake_tokens(PROMPT, tokens)
    one, two = instances
    # A socket on each instance starts its hub, and with it its worker.
    tab = await recorded(observe, two, alice)
    bob_tab = await recorded(observe, one, bob)
    watch = observe(LeaderWatch(instances))
    await watch.one_leader(10)
    started = await completion_start(
        one, alice, chat, tokens=tokens, tps=TOKENS_PER_SECOND
    )
    mid = started["message_id"]
    await tab.until(lambda: len(tab.pieces(mid)) >= 10, 10, "first pieces")
    # The primary of the fleet's membership keys (its hash tag), which the hubs
    # and the outbox use all the time.
    victim = nodes.primary_of(f"{{{redis_prefix}}}")
    assert nodes.keys_per_primary(f"*{redis_prefix}*")[victim] > 0
    replica = nodes.replica_of(victim)
    before = len(tab.pieces(mid))
    nodes.kill(victim)
    killed = time.monotonic()
    await asyncio.to_thread(nodes.wait_primary, replica)
    promoted = time.monotonic()
    # The stream completes, in the database with every token.
    row = await until_done(chat, mid, tokens / TOKENS_PER_SECOND + 30)
    assert (row.content, row.state) == ("".join(full), "done"), row.state
    await tab.until(
        lambda: any(e.get("type") == "chat:completion" for e in tab.stream(mid)),
        10,
        "the end of the stream",
    )
    # What the client got is in order; what the gap lost is bounded.
    pieces = tab.pieces(mid)
    it = iter(full)
    assert all(piece in it for piece in pieces), diverging(pieces, full, tab, mid)
    lost = tokens - len(pieces)
    print(
        f"failover: promoted {promoted - killed:.1f}s after the kill, "
        f"{before} pieces before it, {lost} of {tokens} lost, "
        f"{tab.duplicates()} frames again"
    )
    assert lost <= LOST_IN_GAP, lost
    for recorder in (tab, bob_tab):
        assert not recorder.closed and recorder.errors() == []
    # One worker leads again within one lock timeout of the promotion.
    settled = await watch.one_leader(WORKER_LOCK_TIMEOUT + 5)
    await watch.stop()
    changes = [(round(at - killed, 1), n) for at, n in watch.samples if at > killed]
    print(f"leaders after the kill (s, count): {changes}")
    assert settled - promoted <= WORKER_LOCK_TIMEOUT
    # The lock in the cluster names one of the two.
    owner, _ = await get_state().lock_owner(name=LOCK_NAME)
    assert any(f"-{server.proc.pid}-" in owner for server in instances), owner
    # Stop works on a second stream, asked on the other instance.
    second = await completion_start(one, alice, chat, tokens=2000, tps=50)
    sid2 = second["message_id"]
    await tab.until(lambda: len(tab.pieces(sid2)) >= 5, 10, "second stream")
    status, body = await asyncio.to_thread(
        http_post,
        f"{two.http}/api/tasks/{second['task_id']}/stop",
        {},
        token_for(alice),
    )
    assert (status, body) == (200, {"stopped": True})
    await tab.until(
        lambda: any(e.get("type") == "chat:tasks:cancel" for e in tab.stream(sid2)),
        10,
        "the cancel",
    )
    row = await message_row(chat, sid2)
    assert (row.state, row.stop_reason) == ("stopped", "user")
    # New sockets are served on both instances and see each other.
    await tab.stop()
    await bob_tab.stop()
    fresh = [
        await SocketClient.open(RealSocket(one.ws), bob, join=True),
        await SocketClient.open(RealSocket(two.ws), alice, join=True),
    ]
    try:
        for client in fresh:
            ids = (await client.call("user-list"))["data"]["user_ids"]
            assert ids == sorted([alice.id, bob.id])
    finally:
        for client in fresh:
            await client.close()


# The membership slot cannot move under load today. The store's scripts declare
# only their first key: during a migration such a script runs on the source and
# writes there keys already moved to the target, so a key exists on both sides and
# MIGRATE stops (BUSYKEY), as `redis-cli --cluster reshard` would. Meanwhile a
# request can fail too: redis-py's cluster pipeline of the routes lookup raised
# AttributeError ("'NoneType' object has no attribute 'writelines'"), which the
# outbox does not retry, and the REST call answered 500.
MEMBERSHIP_SPLITS = "the membership slot does not migrate (BUSYKEY, or a 500)"


@pytest.mark.parametrize(
    "moving",
    [
        "rooms_and_inboxes",
        pytest.param(
            "membership",
            marks=pytest.mark.xfail(reason=MEMBERSHIP_SPLITS, strict=True),
        ),
    ],
)
async def test_slots_move_while_the_fleet_runs(
    nodes, instances, redis_prefix, people, observe, moving
):
    alice, bob = people["alice"], people["bob"]
    chat = await chat_create(alice)
    tokens = 160
    full = fake_tokens(PROMPT, tokens)
    a_token = token_for(alice)
    one, two = instances
    cid = await channel_over_rest(one, a_token, bob.id)
    tab = await recorded(observe, one, alice)
    bob_tab = await recorded(observe, two, bob)
    started = await completion_start(
        two, alice, chat, tokens=tokens, tps=TOKENS_PER_SECOND
    )
    mid = started["message_id"]
    await tab.until(lambda: len(tab.pieces(mid)) >= 5, 10, "first pieces")
    sent: list[str] = []
    quiet = asyncio.Event()

    async def talk():
        # Room traffic: messages to the channel, stored and sent to its room.
        while not quiet.is_set():
            text = f"m{len(sent)}"
            status, _ = await asyncio.to_thread(
                http_post,
                f"{one.http}/api/channels/{cid}/messages/",
                {"content": text},
                a_token,
            )
            assert status == 201, status
            sent.append(text)
            await asyncio.sleep(0.1)

    talking = asyncio.ensure_future(talk())
    await bob_tab.until(
        lambda: len(bob_tab.channel_messages()) >= 3, 10, "first messages"
    )
    # The slots of the fleet's keys: the rooms' histories (the stream's user room,
    # the channel's), the instances' inboxes, or membership ({prefix}). An inbox
    # exists only while it holds messages: its slot comes from the instance's
    # channel (tagged by the channel's process part, "name!").
    membership = key_slot(f"{{{redis_prefix}}}".encode())
    if moving == "membership":
        slots = {membership}
    else:
        slots = await asyncio.to_thread(nodes.slots_of, f"*{redis_prefix}*")
        channels = nodes.client().hvals(f"{{{redis_prefix}}}:instances")
        assert len(channels) == 2
        slots |= {key_slot(c.split("!")[0].encode() + b"!") for c in channels}
        slots.discard(membership)
        for room in (f"user:{alice.id}", f"channel:{cid}"):
            assert key_slot(f"{{{room}}}".encode()) in slots, room
    began, sent_before = time.monotonic(), len(sent)
    try:
        # Twice: each slot moves to the next primary, then to the one after.
        for _ in range(2):
            await asyncio.to_thread(nodes.move_slots, sorted(slots), pause=MOVE_PAUSE)
    finally:
        quiet.set()
        await talking  # the last message sent, or why the server refused one
    took, sent_meanwhile = time.monotonic() - began, len(sent) - sent_before
    # The stream is complete for the client and in the database.
    row = await until_done(chat, mid, tokens / TOKENS_PER_SECOND + 30)
    assert row.content == "".join(full)
    await tab.until(
        lambda: any(e.get("type") == "chat:completion" for e in tab.stream(mid)),
        10,
        "the end of the stream",
    )
    assert tab.pieces(mid) == full
    # Every message reached the other instance's socket, in order.
    await bob_tab.until(
        lambda: len(bob_tab.channel_messages()) >= len(sent), 10, "every message"
    )
    assert bob_tab.channel_messages() == sent
    print(
        f"reshard: {len(slots)} slots moved twice in {took:.1f}s, "
        f"{sent_meanwhile} messages meanwhile (of {len(sent)}), {tokens} pieces"
    )
    assert sent_meanwhile >= 10  # the traffic ran through the migration
    for recorder in (tab, bob_tab):
        assert not recorder.closed and recorder.errors() == []
        await recorder.stop()


async def test_stored_appends_keep_their_positions_when_the_routes_node_fails(
    nodes, redis_prefix
):
    """On a cluster a room's history and the routes live on different primaries:
    when the routes' primary dies after the appends were stored, the caller still
    gets their positions (routes None, so the outbox retries only the sends) and
    nothing is stored twice."""
    every_node = [("127.0.0.1", port) for port in nodes.ports]
    store = RedisState(
        url=nodes.url, cluster=True, cluster_nodes=every_node, prefix=redis_prefix
    )
    routes_at = nodes.primary_of(f"{{{redis_prefix}}}")
    room = next(
        f"chat:{n}"
        for n in range(100)
        if nodes.primary_of(room_tag(f"chat:{n}")) != routes_at
    )
    # The routes' slot stays down (its replica dies too) and the others serve on:
    # the routes read must fail, however long the client retries.
    for port in nodes.live_ports():
        nodes.node(port).config_set("cluster-require-full-coverage", "no")
    try:
        first, _ = await store.history_publish(
            appends=[(room, '{"n":1}')], rooms=[room]
        )
        # Its scripts loaded now: loading them later asks every primary, the dead
        # one too, and fails.
        await store.history_read(room=room, epoch=first[0][0], offset=0, limit=10)
        nodes.kill(nodes.replica_of(routes_at))
        nodes.kill(routes_at)
        positions, routes = await store.history_publish(
            appends=[(room, '{"n":2}')], rooms=[room]
        )
        assert routes is None and positions[0][1] == 2
    finally:
        await store.close()
    # The second record was stored once, at offset 2 (read on its node itself: the
    # history's list, "offset|ms|record" each).
    history_at = nodes.primary_of(room_tag(room))
    stored = nodes.node(history_at).lrange(f"{redis_prefix}:h:{room_tag(room)}", 0, -1)
    assert [int(item.split("|", 1)[0]) for item in stored] == [1, 2]
