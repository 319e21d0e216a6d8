"""Read settings from the environment, with Open WebUI's names as aliases.

An operator moving from Open WebUI keeps its environment: each of its socket settings
that has an equivalent here is read when ours is not set, and ours win when both are
(README, "Open WebUI's settings"). Used by realtime.settings and by the launcher,
which passes the ping settings to the ASGI server before Django is set up.
"""

import os

# Ours -> Open WebUI's name for the same thing. Open WebUI's Redis settings
# (WEBSOCKET_REDIS_URL, WEBSOCKET_SENTINEL_*) only count with WEBSOCKET_MANAGER=redis,
# as in Open WebUI, so they are read in realtime.settings, not here.
ALIASES = {
    "ALLOWED_ORIGINS": "SOCKETIO_CORS_ORIGINS",
    "WORKER_LOCK_TIMEOUT": "WEBSOCKET_REDIS_LOCK_TIMEOUT",
    "WS_PING_INTERVAL": "WEBSOCKET_SERVER_PING_INTERVAL",
    "WS_PING_TIMEOUT": "WEBSOCKET_SERVER_PING_TIMEOUT",
}

# socket.io's defaults, which Open WebUI keeps: a ping every 25 s, and a peer that
# has not answered one in 20 s is dead (its TCP connection may never report it).
WS_PING_INTERVAL_DEFAULT = 25
WS_PING_TIMEOUT_DEFAULT = 20


def env_str(name: str, default: str = "", environ=None) -> str:
    """Read a string setting from the environment (or its Open WebUI alias)."""
    environ = os.environ if environ is None else environ
    # Set but empty is a value (METRICS_ALLOWED_IPS="" allows no address); only an
    # unset name falls back to its alias, then to the default.
    if name in environ:
        return environ[name].strip()
    if name in ALIASES and ALIASES[name] in environ:
        return environ[ALIASES[name]].strip()
    return default


def env_int(name: str, default: int, environ=None) -> int:
    """Read an integer setting from the environment."""
    raw = env_str(name, environ=environ)
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    """Read a float setting from the environment."""
    raw = env_str(name)
    return float(raw) if raw else default


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean setting (1/true/yes/on) from the environment."""
    raw = env_str(name).lower()
    return raw in {"1", "true", "yes", "on"} if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    """Read a list separated by commas (or semicolons, as Open WebUI's CORS lists)."""
    raw = env_str(name, default).replace(";", ",")
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_hosts(name: str) -> list[tuple[str, int]]:
    """Read "host:port,host:port" (Sentinels, cluster nodes)."""
    return [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in env_list(name)]


def ws_ping(environ=None) -> tuple[int, int]:
    """(interval, timeout) in seconds of the ASGI server's WebSocket ping."""
    return (
        env_int("WS_PING_INTERVAL", WS_PING_INTERVAL_DEFAULT, environ),
        env_int("WS_PING_TIMEOUT", WS_PING_TIMEOUT_DEFAULT, environ),
    )
