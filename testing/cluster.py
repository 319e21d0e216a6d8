"""Server processes for tests: the environment they run with (the test database, the
real Redis under a test's prefix), where their logs go, HTTP to them, and the check
of what they log."""

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

from testing.clients import RealSocket, SocketClient
from testing.services import REDIS_TEST_URL

# Server logs, screenshots and other files a failed run leaves to look at.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Short, so that tests of a killed instance's reaping wait seconds, not minutes.
INSTANCE_TTL = 2.0
# Small, so that a test can send an oversized frame cheaply.
MAX_FRAME_BYTES = 64 * 1024


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


# --- HTTP to a server process --------------------------------------------------------


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


async def channel_over_rest(server, token: str, *member_ids: int) -> int:
    """Create a channel on a server process over REST, with members; its id."""
    status, channel = await asyncio.to_thread(
        http_post, f"{server.http}/api/channels/", {"name": "team"}, token
    )
    assert status == 201, channel
    for user_id in member_ids:
        status, body = await asyncio.to_thread(
            http_post,
            f"{server.http}/api/channels/{channel['id']}/members/",
            {"user_id": user_id},
            token,
        )
        assert status == 201, body
    return channel["id"]


# --- What a server logs --------------------------------------------------------------

SECRET = "query-secret-7f3a"
# Lines a server printed per connection or request before (uvicorn, websockets and
# daphne's access log).
PER_CONNECTION = ("[accepted]", "connection open", "connection closed")
PER_CONNECTION += ("WSCONNECT", "WSDISCONNECT", '"WebSocket ', "GET /healthz")


async def visit(port: int) -> None:
    """A socket with a token in its URL, and HTTP requests with query strings."""
    url = f"ws://127.0.0.1:{port}/ws/?token={SECRET}"
    client = await SocketClient.open(RealSocket(url))
    try:
        await client.send(
            {"event": "connect", "data": {"token": "not-a-jwt"}, "ack": 0}
        )
        assert (await client.recv(10))["error"]["code"] == "unauthorized"
    finally:
        await client.close()
    for path in (f"/healthz?token={SECRET}", f"/api/nope?token={SECRET}"):
        try:
            await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{port}{path}", timeout=5
            )
        except urllib.error.HTTPError as err:
            assert err.code == 404


def assert_quiet(text: str) -> None:
    """The log shows no query string and no line per connection or request."""
    assert SECRET not in text, text
    noisy = [
        line for line in text.splitlines() if any(p in line for p in PER_CONNECTION)
    ]
    assert noisy == [], text
