"""Settings from the environment: a sqlite:// DATABASE_URL is SQLITE_PATH, and Open
WebUI's socket settings are aliases of ours."""

import json
import os
import subprocess
import sys

import pytest

from realtime.launcher import BASE_DIR

# Every variable these tests set, removed from the inherited environment first.
OURS_AND_OPEN_WEBUIS = (
    "DATABASE_URL",
    "SQLITE_PATH",
    "DB_CONN_MAX_AGE",
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "ALLOWED_ORIGINS",
    "WORKER_LOCK_TIMEOUT",
    "WS_PING_INTERVAL",
    "WS_PING_TIMEOUT",
    "ENABLE_WEBSOCKET_SUPPORT",
    "WEBSOCKET_MANAGER",
    "WEBSOCKET_REDIS_URL",
    "WEBSOCKET_REDIS_CLUSTER",
    "WEBSOCKET_SENTINEL_HOSTS",
    "WEBSOCKET_SENTINEL_PORT",
    "WEBSOCKET_REDIS_LOCK_TIMEOUT",
    "WEBSOCKET_SERVER_PING_INTERVAL",
    "WEBSOCKET_SERVER_PING_TIMEOUT",
    "SOCKETIO_CORS_ORIGINS",
)
SHOWN = (
    "REDIS_URL",
    "REDIS_CLUSTER",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_ENABLED",
    "ALLOWED_ORIGINS",
    "WORKER_LOCK_TIMEOUT",
    "WS_PING_INTERVAL",
    "WS_PING_TIMEOUT",
    "ENABLE_WEBSOCKET_SUPPORT",
)


def run_settings(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh process whose environment has only these of our and
    Open WebUI's settings."""
    clean = {k: v for k, v in os.environ.items() if k not in OURS_AND_OPEN_WEBUIS}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def database_settings(**env: str) -> dict:
    """DATABASES["default"] as a fresh process computes it from this environment."""
    code = (
        "import json; from realtime import settings; "
        "print(json.dumps(settings.DATABASES['default'], default=str))"
    )
    result = run_settings(code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", ["/tmp/rt-settings.sqlite3", "relative.sqlite3"])
def test_a_sqlite_database_url_gets_the_sqlite_path_settings(path):
    by_path = database_settings(SQLITE_PATH=path)
    by_url = database_settings(DATABASE_URL=f"sqlite:///{path}")
    assert by_url == by_path
    assert by_url["OPTIONS"] == {"timeout": 20, "transaction_mode": "IMMEDIATE"}


def test_a_postgres_url_is_taken_as_it_is():
    db = database_settings(DATABASE_URL="postgres://u:p@db.example:5433/app")
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"]) == (
        "django.db.backends.postgresql",
        "db.example",
        5433,
        "app",
    )
    assert db["CONN_MAX_AGE"] == 60


def settings_of(**env: str) -> dict:
    """Our settings (and the layer's backend) as a fresh process computes them."""
    code = (
        "import json; from realtime import settings as s; print(json.dumps("
        f"{{n: getattr(s, n) for n in {SHOWN!r}}} | "
        "{'layer': s.CHANNEL_LAYERS['default']['BACKEND']}))"
    )
    result = run_settings(code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(**env: str) -> str:
    """The error a fresh process gets when it loads the settings."""
    result = run_settings("from realtime import settings", **env)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("ours", "theirs", "value", "expected"),
    [
        ("ALLOWED_ORIGINS", "SOCKETIO_CORS_ORIGINS", "https://a.test;https://b.test",
         ["https://a.test", "https://b.test"]),
        ("WORKER_LOCK_TIMEOUT", "WEBSOCKET_REDIS_LOCK_TIMEOUT", "60", 60.0),
        ("WS_PING_INTERVAL", "WEBSOCKET_SERVER_PING_INTERVAL", "7", 7),
        ("WS_PING_TIMEOUT", "WEBSOCKET_SERVER_PING_TIMEOUT", "3", 3),
    ],
)  # fmt: skip
def test_an_open_webui_name_is_read_when_ours_is_unset(ours, theirs, value, expected):
    default = settings_of()[ours]
    assert default != expected
    assert settings_of(**{theirs: value})[ours] == expected
    # Ours win when both are set.
    assert settings_of(**{theirs: value, ours: "9"})[ours] in (["9"], 9, 9.0)


def test_ping_defaults_are_socket_ios():
    shown = settings_of()
    assert (shown["WS_PING_INTERVAL"], shown["WS_PING_TIMEOUT"]) == (25, 20)


def test_websocket_manager_redis_takes_open_webuis_redis_url():
    url = "redis://cache.test:6380/2"
    shown = settings_of(WEBSOCKET_MANAGER="redis", WEBSOCKET_REDIS_URL=url)
    assert shown["REDIS_URL"] == url and shown["REDIS_ENABLED"] is True
    assert shown["layer"] == "channels_redis.core.RedisChannelLayer"
    ours = settings_of(
        WEBSOCKET_MANAGER="redis", WEBSOCKET_REDIS_URL=url, REDIS_URL="redis://o/0"
    )
    assert ours["REDIS_URL"] == "redis://o/0"


def test_without_websocket_manager_open_webuis_redis_settings_are_not_read():
    shown = settings_of(
        WEBSOCKET_MANAGER="",
        WEBSOCKET_REDIS_URL="redis://cache.test:6380/2",
        WEBSOCKET_SENTINEL_HOSTS="s1",
    )
    assert (shown["REDIS_ENABLED"], shown["REDIS_URL"], shown["REDIS_SENTINELS"]) == (
        False,
        "",
        [],
    )
    assert shown["layer"] == "channels.layers.InMemoryChannelLayer"
    # Our REDIS_URL turns Redis on whatever WEBSOCKET_MANAGER says.
    assert settings_of(WEBSOCKET_MANAGER="", REDIS_URL="redis://o/0")["REDIS_ENABLED"]


def test_open_webuis_sentinels_name_the_master_by_the_urls_host():
    shown = settings_of(
        WEBSOCKET_MANAGER="redis",
        WEBSOCKET_REDIS_URL="redis://:pw@primary/1",
        WEBSOCKET_SENTINEL_HOSTS="s1, s2",
        WEBSOCKET_SENTINEL_PORT="26380",
    )
    assert shown["REDIS_SENTINELS"] == [["s1", 26380], ["s2", 26380]]
    assert shown["REDIS_SENTINEL_MASTER"] == "primary"
    default_port = settings_of(
        WEBSOCKET_MANAGER="redis",
        WEBSOCKET_SENTINEL_HOSTS="s1",
        REDIS_SENTINEL_MASTER="ours",
    )
    assert default_port["REDIS_SENTINELS"] == [["s1", 26379]]
    assert default_port["REDIS_SENTINEL_MASTER"] == "ours"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WEBSOCKET_MANAGER": "redis"}, "WEBSOCKET_MANAGER=redis needs REDIS_URL"),
        ({"WEBSOCKET_MANAGER": "mongodb"}, "only 'redis' or empty"),
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"REDIS_KEY_PREFIX": "{rt}"}, "no braces"),
    ],
)
def test_settings_this_server_cannot_honour_refuse_to_start(env, message):
    line = refusal(**env)
    assert line.startswith("django.core.exceptions.ImproperlyConfigured"), line
    assert message in line


def test_websocket_support_off_is_a_startup_warning():
    code = "import django; django.setup()"
    quiet = run_settings(code, DJANGO_SETTINGS_MODULE="realtime.settings")
    assert quiet.returncode == 0, quiet.stderr
    assert "ENABLE_WEBSOCKET_SUPPORT" not in quiet.stderr
    warned = run_settings(
        code,
        DJANGO_SETTINGS_MODULE="realtime.settings",
        ENABLE_WEBSOCKET_SUPPORT="false",
    )
    assert warned.returncode == 0, warned.stderr
    assert "WARNING realtime.apps ENABLE_WEBSOCKET_SUPPORT=false" in warned.stderr
    assert "WebSocket handshakes are refused" in warned.stderr


def test_every_open_webui_alias_is_in_the_readme():
    from realtime.environ import ALIASES

    readme = (BASE_DIR / "README.md").read_text()
    table = readme.split("### Open WebUI's settings", 1)[1]
    for name in [*ALIASES.values(), *OURS_AND_OPEN_WEBUIS]:
        if name.startswith(("WEBSOCKET_", "SOCKETIO_", "ENABLE_")):
            assert f"`{name}" in table, name


def test_open_webuis_cluster_switch_is_ours_and_selects_the_cluster_layer():
    for switch in ("REDIS_CLUSTER", "WEBSOCKET_REDIS_CLUSTER"):
        shown = settings_of(
            **{switch: "true"},
            REDIS_URL="redis://:pw@node1:7000/0",
            REDIS_CLUSTER_NODES="node2:7001, node3:7002",
        )
        assert shown["REDIS_CLUSTER"] is True
        assert shown["REDIS_CLUSTER_NODES"] == [["node2", 7001], ["node3", 7002]]
        assert shown["layer"] == "realtime.cluster_layer.RedisClusterChannelLayer"
    assert settings_of(REDIS_URL="redis://o/0")["REDIS_CLUSTER"] is False
