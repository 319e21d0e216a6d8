"""Fixtures shared by every app's tests: users, tokens, WebSocket clients, Redis."""

import asyncio
import json
import os
import shutil
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from rest_framework_simplejwt.tokens import AccessToken

from realtime import state as state_module
from realtime.hub import stop_hub
from realtime.launcher import Fleet
from realtime.settings import redis_channel_layer
from realtime.wire import dumps, loads

# Threads of database_sync_to_async would otherwise keep connections open past the
# test run, and PostgreSQL refuses to drop a test database that is still in use.
# (Every thread's connection shares this dict, so it applies to all of them.)
connections.settings["default"]["CONN_MAX_AGE"] = 0

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
# CI sets REQUIRE_SERVICES=1: a missing Redis is then a failure, never a skip.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def redis_available() -> bool:
    """Whether the test Redis answers on its port."""
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_TEST_URL)
    try:
        with socket.create_connection(
            (parsed.hostname, parsed.port or 6379), timeout=1
        ):
            return True
    except OSError:
        return False


# The browser tests drive Debian's Chromium (never a browser playwright downloads).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium_available() -> bool:
    """Whether the Chromium the browser tests use is installed."""
    return os.access(CHROMIUM, os.X_OK)


def pytest_collection_modifyitems(config, items):
    """Skip Redis and browser tests when their service is missing, unless services
    are required."""
    if not chromium_available() and any("browser" in i.keywords for i in items):
        if REQUIRE_SERVICES:
            raise pytest.UsageError(
                f"REQUIRE_SERVICES=1 but Chromium is not installed at {CHROMIUM}"
            )
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)
    if redis_available():
        return
    if REQUIRE_SERVICES:
        raise pytest.UsageError(
            f"REQUIRE_SERVICES=1 but Redis at {REDIS_TEST_URL} is down"
        )
    skip = pytest.mark.skip(reason=f"no Redis at {REDIS_TEST_URL}")
    for item in items:
        if "redis" in item.keywords or "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, and before it is dropped, the connections the
    background database threads (realtime.db) opened to it are closed: otherwise
    PostgreSQL refuses to drop a database "being accessed by other users"."""
    yield
    from realtime.db import close_connections

    close_connections()


@pytest.fixture(autouse=True)
def _no_worker_in_process(settings):
    """In-process tests start hubs without the cleanup worker (tests of the worker run
    it themselves); server processes of the cluster fixture run it, as in production."""
    settings.WORKER_IN_PROCESS = False


@pytest.fixture(autouse=True)
async def _fresh_realtime():
    """Each test starts with an empty in-memory layer and state and ends its hub."""
    channel_layers.backends = {}
    state_module.reset_state()
    yield
    await stop_hub()
    channel_layers.backends = {}
    state_module.reset_state()
    # Streams a test left open belong to its loop; at exit the emitter would end
    # them in a database that is gone by then.
    from chats import streams

    streams._loop_streams.made.clear()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"rt-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_settings(settings, redis_prefix):
    """Switch this process to the real Redis (layer and state) under a fresh prefix."""
    settings.REDIS_URL = REDIS_TEST_URL
    settings.REDIS_KEY_PREFIX = redis_prefix
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url=REDIS_TEST_URL, sentinels=[], master="", prefix=redis_prefix
        )
    }
    yield settings
    redis_flush(redis_prefix)


def redis_flush(prefix: str) -> None:
    """Delete every key under a test prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request):
    """Run the test on the embedded default and again on the real Redis."""
    if request.param == "redis":
        request.getfixturevalue("redis_settings")
    return request.param


def api_for(user):
    """A DRF test client authenticated as the user with a bearer token."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


@pytest.fixture
def make_user(django_user_model):
    """Create users: make_user("alice", name="Alice", role="admin", is_active=True)."""
    counter = {"n": 0}

    def make(username=None, **fields):
        counter["n"] += 1
        username = username or f"user{counter['n']}"
        fields.setdefault("name", username.title())
        user = django_user_model(username=username, **fields)
        user.set_password(f"{username}-pass")
        user.save()
        return user

    return make


def token_for(user) -> str:
    """A valid access token for a user."""
    return str(AccessToken.for_user(user))


class Client:
    """A test WebSocket client on Channels' in-process communicator."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.next_ack = 1
        self.connected = False
        self.sid = None

    async def open(self) -> None:
        connected, _ = await self.ws.connect()
        assert connected
        self.connected = True

    async def send_raw(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def send(self, frame: dict) -> None:
        await self.send_raw(dumps(frame))

    async def recv(self, timeout: float = 2) -> dict:
        """The next frame; fails if the socket closed instead.

        On timeout Channels' communicator cancels the application: use nothing()
        to poll."""
        message = await self.ws.receive_output(timeout)
        assert message["type"] == "websocket.send", message
        return loads(message["text"])

    async def recv_close(self, timeout: float = 2) -> int:
        """Skip frames until the server closes; return the close code."""
        while True:
            message = await self.ws.receive_output(timeout)
            if message["type"] == "websocket.close":
                return message.get("code")

    async def call(self, event: str, data=None, timeout: float = 2) -> dict:
        """Emit with an ack and return the ack frame (other frames are skipped)."""
        ack = self.next_ack
        self.next_ack += 1
        await self.send({"event": event, "data": data, "ack": ack})
        while True:
            frame = await self.recv(timeout)
            if frame.get("ack") == ack:
                return frame

    async def recv_event(self, name: str, timeout: float = 2) -> dict:
        """Skip frames until event `name` arrives; return its data."""
        while True:
            frame = await self.recv(timeout)
            if frame.get("event") == name:
                return frame["data"]

    async def nothing(self, timeout: float = 0.2) -> bool:
        """True if no frame arrives within timeout."""
        return await self.ws.receive_nothing(timeout)

    async def close(self) -> None:
        if self.connected:
            await self.ws.disconnect()
            self.connected = False


@pytest.fixture
async def ws():
    """Open clients: `await ws(user)` connects and authenticates; `ws()` is raw."""
    from realtime.asgi import application

    clients: list[Client] = []

    async def open_client(user=None, *, headers=None, join=False) -> Client:
        client = Client(
            WebsocketCommunicator(application, "/ws/", headers=headers or [])
        )
        clients.append(client)
        await client.open()
        if user is not None:
            await client.send(
                {"event": "connect", "data": {"token": token_for(user)}, "ack": 0}
            )
            frame = await client.recv()
            assert "data" in frame, frame
            client.sid = frame["data"]["sid"]
            if join:
                reply = await client.call("user-join", {})
                assert "data" in reply, reply
        return client

    yield open_client
    for client in clients:
        await client.close()


# --- Several real server processes -------------------------------------------------

INSTANCE_TTL = 2.0
MAX_FRAME_BYTES = 64 * 1024
ARTIFACTS = Path(__file__).resolve().parent / "test-artifacts"


def database_env() -> dict[str, str]:
    """Point server processes at the test database this process uses."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return {"SQLITE_PATH": s["NAME"], "DATABASE_URL": ""}
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return {"DATABASE_URL": f"postgres://{auth}@{host}:{port}/{s['NAME']}"}


def cluster_env(redis_prefix: str, secret_key: str) -> dict:
    """Environment of the server processes the cluster tests start."""
    return {
        "REDIS_URL": REDIS_TEST_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "SECRET_KEY": secret_key,
        "INSTANCE_TTL": str(INSTANCE_TTL),
        "PRESENCE_INTERVAL": "0.5",
        "MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
        "LOG_LEVEL": "DEBUG",
        **database_env(),
    }


@pytest.fixture
def cluster(redis_settings, redis_prefix, settings, request):
    """Two instances, daphne and uvicorn, on the test database and the real Redis,
    each with its in-process worker (the launcher's Fleet without a separate one)."""
    ARTIFACTS.mkdir(exist_ok=True)
    env = cluster_env(redis_prefix, settings.SECRET_KEY)
    marker = request.node.get_closest_marker("cluster_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    fleet = Fleet(
        env=env,
        servers=["daphne", "uvicorn"],
        worker=False,
        log_dir=ARTIFACTS,
        name=request.node.name,
    )
    try:
        fleet.start()
        yield fleet.instances
    finally:
        fleet.stop()
    # Tokens travel only in the first frame and are never logged (JWTs start "eyJ").
    for server in fleet.instances:
        assert "eyJ" not in server.log_path.read_text(errors="replace")


class PrivateRedis:
    """A redis-server of the test's own, which the test may restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = None

    def start(self) -> None:
        import subprocess

        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


class WsClient:
    """A real WebSocket client speaking the protocol."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.next_ack = 1
        self.sid = None

    @classmethod
    async def open(cls, url: str, user, *, join: bool = False) -> "WsClient":
        client = cls(await websockets.connect(url))
        hello = await client.call("connect", {"token": token_for(user)}, ack=0)
        client.sid = hello["data"]["sid"]
        if join:
            await client.call("user-join", {})
        return client

    async def call(self, event, data=None, *, ack=None, timeout=5) -> dict:
        if ack is None:
            ack, self.next_ack = self.next_ack, self.next_ack + 1
        await self.conn.send(json.dumps({"event": event, "data": data, "ack": ack}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
            if frame.get("ack") == ack:
                return frame

    async def event(self, name, timeout=5) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
            if frame.get("event") == name:
                return frame["data"]

    async def closed_code(self, timeout=5) -> int:
        try:
            while True:
                await asyncio.wait_for(self.conn.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.conn.close()


def http_post(url: str, body: dict | None, token: str) -> tuple[int, dict]:
    """POST JSON to a server process; returns (status, body)."""
    return http_request(url, token, data=json.dumps(body or {}).encode())


def http_get(url: str, token: str) -> tuple[int, dict]:
    """GET from a server process; returns (status, body)."""
    return http_request(url, token)


def http_request(
    url: str, token: str, data: bytes | None = None, method: str | None = None
) -> tuple[int, dict]:
    """One HTTP request with a bearer token; returns (status, JSON body or {})."""
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            return response.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.fixture
async def people(make_user):
    make = database_sync_to_async(make_user)
    return {
        "alice": await make("alice"),
        "bob": await make("bob"),
        "admin": await make("admin", role="admin"),
    }
