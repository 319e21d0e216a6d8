"""Django settings, all driven by environment variables (see README, Configuration).

With no variables set this is the embedded default: SQLite, the in-memory channel
layer and in-process shared state, so `scripts/serve.sh` needs nothing installed.
"""

import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from realtime import layer_config
from realtime.environ import (
    WS_PING_INTERVAL_DEFAULT,
    WS_PING_TIMEOUT_DEFAULT,
    env_bool,
    env_float,
    env_hosts,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", False)

# A random key per process would invalidate every token on restart and differ between
# instances, so a fleet must set SECRET_KEY; the embedded default keeps one on disk.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    _key_file = BASE_DIR / ".secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
# Origins allowed to open the WebSocket besides the server's own host; "*" allows any.
ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = [o for o in ALLOWED_ORIGINS if o != "*"]

INSTALLED_APPS = [
    "daphne",
    # django.contrib.admin, with users listed under auth (realtime/admin_site.py).
    "realtime.admin_site.RealtimeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "realtime",
    "chats",
    "channels_app",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "realtime.urls"
ASGI_APPLICATION = "realtime.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Several server processes may share one SQLite file (realtime_fleet, the tests): a
# writer waits this many seconds for another's lock instead of failing at once.
SQLITE_BUSY_TIMEOUT = 20


def sqlite_database(name: str) -> dict:
    """The SQLite settings, the same for SQLITE_PATH and a sqlite:// DATABASE_URL."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        # IMMEDIATE: a transaction takes the write lock when it begins, so one that
        # reads and then writes waits its turn instead of failing with "database is
        # locked" when another process writes in between.
        "OPTIONS": {"timeout": SQLITE_BUSY_TIMEOUT, "transaction_mode": "IMMEDIATE"},
    }


DATABASE_URL = env_str("DATABASE_URL")
_database = (
    dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    if DATABASE_URL
    else None
)
if _database is None:
    DATABASES = {
        "default": sqlite_database(env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")))
    }
elif _database["ENGINE"].endswith("sqlite3"):
    # sqlite:///PATH is SQLITE_PATH=PATH: without these options two processes on one
    # file failed with "database is locked".
    DATABASES = {"default": sqlite_database(_database["NAME"])}
else:
    DATABASES = {"default": _database}
# Cross-process tests need a test database other processes can open: a file, not
# SQLite's default in-memory test database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}

AUTH_USER_MODEL = "realtime.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Redis: channel layer and shared state -------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# "host:port,host:port" of Sentinels; with REDIS_SENTINEL_MASTER, used instead of
# REDIS_URL's host (REDIS_URL may still carry password and db number).
REDIS_SENTINELS = env_hosts("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER")
# A Redis Cluster: REDIS_URL names any node (and the password); the client finds the
# rest. REDIS_CLUSTER_NODES ("host:port,...") adds startup nodes. Open WebUI's
# WEBSOCKET_REDIS_CLUSTER means the same.
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", env_bool("WEBSOCKET_REDIS_CLUSTER", False))
REDIS_CLUSTER_NODES = env_hosts("REDIS_CLUSTER_NODES")

# Open WebUI's socket settings (README, "Open WebUI's settings"): its Redis URL and
# Sentinels count only with WEBSOCKET_MANAGER=redis, as in Open WebUI; ours win.
WEBSOCKET_MANAGER = env_str("WEBSOCKET_MANAGER").lower()
if WEBSOCKET_MANAGER not in {"", "redis"}:
    raise ImproperlyConfigured(
        f"WEBSOCKET_MANAGER={WEBSOCKET_MANAGER!r}: only 'redis' or empty (embedded)"
    )
if WEBSOCKET_MANAGER == "redis":
    # Open WebUI's WEBSOCKET_REDIS_URL falls back to its REDIS_URL, ours by name.
    REDIS_URL = REDIS_URL or env_str("WEBSOCKET_REDIS_URL")
    if not REDIS_SENTINELS:
        _port = env_int("WEBSOCKET_SENTINEL_PORT", 26379)
        REDIS_SENTINELS = [
            (host, _port) for host in env_list("WEBSOCKET_SENTINEL_HOSTS")
        ]
        if REDIS_SENTINELS and not REDIS_SENTINEL_MASTER and REDIS_URL:
            # Open WebUI names the Sentinel master by its Redis URL's host.
            REDIS_SENTINEL_MASTER = urlparse(REDIS_URL).hostname or ""
    if not (REDIS_URL or REDIS_SENTINELS):
        raise ImproperlyConfigured(
            "WEBSOCKET_MANAGER=redis needs REDIS_URL (or WEBSOCKET_REDIS_URL) or "
            "Sentinels (REDIS_SENTINELS or WEBSOCKET_SENTINEL_HOSTS)"
        )
# redis-sentinel's example name, when neither ours nor Open WebUI's names one.
REDIS_SENTINEL_MASTER_DEFAULT = "mymaster"
REDIS_SENTINEL_MASTER = REDIS_SENTINEL_MASTER or REDIS_SENTINEL_MASTER_DEFAULT
# Namespaces every key this service writes, so several deployments share one Redis.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "rt")
if "{" in REDIS_KEY_PREFIX or "}" in REDIS_KEY_PREFIX:
    raise ImproperlyConfigured("REDIS_KEY_PREFIX: no braces (they make hash tags)")
if REDIS_CLUSTER and not (REDIS_URL or REDIS_CLUSTER_NODES):
    raise ImproperlyConfigured(
        "REDIS_CLUSTER=true needs REDIS_URL or REDIS_CLUSTER_NODES"
    )
REDIS_ENABLED = bool(REDIS_URL or REDIS_SENTINELS or REDIS_CLUSTER)


# Messages for one instance queue on one channel, so it needs far more room than the
# per-socket default of 100; past this, channels-redis drops new group messages (and
# a direct send raises ChannelFull).
LAYER_CAPACITY = env_int("LAYER_CAPACITY", 10_000)
# channels-redis blocks 5 s in BZPOPMIN per receive; redis-py 8 also defaults to a 5 s
# socket timeout, so idle receives would fail at the socket (and a message popped in
# that instant would be lost). Reads on layer connections get this long instead.
LAYER_SOCKET_TIMEOUT = env_float("LAYER_SOCKET_TIMEOUT", 30.0)


# redis-py 8's asyncio pools allow 100 connections and then fail at once
# (MaxConnectionsError) instead of waiting: a burst of concurrent commands (200 streams,
# a reconnect storm) must not fail. Layer pools get this many; the state store's pool
# waits up to REDIS_POOL_TIMEOUT for a free connection.
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 1000)
REDIS_POOL_TIMEOUT = env_float("REDIS_POOL_TIMEOUT", 10.0)


def redis_channel_layer(
    *, url: str, sentinels: list, master: str, prefix: str, **cluster
) -> dict:
    """The CHANNEL_LAYERS entry on Redis (tests pass their prefix; `cluster`:
    cluster=, nodes=, defaulting to REDIS_CLUSTER and REDIS_CLUSTER_NODES)."""
    return layer_config.redis(
        url=url,
        sentinels=sentinels,
        master=master,
        prefix=prefix,
        cluster=cluster.get("cluster", REDIS_CLUSTER),
        nodes=cluster.get("nodes", REDIS_CLUSTER_NODES),
        capacity=LAYER_CAPACITY,
        socket_timeout=LAYER_SOCKET_TIMEOUT,
        max_connections=REDIS_MAX_CONNECTIONS,
    )


if REDIS_ENABLED:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            url=REDIS_URL,
            sentinels=REDIS_SENTINELS,
            master=REDIS_SENTINEL_MASTER,
            prefix=REDIS_KEY_PREFIX,
        )
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": LAYER_CAPACITY},
        }
    }

# --- Real-time protocol limits and timings -------------------------------------------
# The ASGI server pings every socket this often (seconds) and closes one that has not
# answered within WS_PING_TIMEOUT: a peer that vanished without a TCP close (a laptop
# lid, a dropped NAT entry) is freed. The launcher passes both to uvicorn or daphne.
WS_PING_INTERVAL = env_int("WS_PING_INTERVAL", WS_PING_INTERVAL_DEFAULT)
WS_PING_TIMEOUT = env_int("WS_PING_TIMEOUT", WS_PING_TIMEOUT_DEFAULT)
# Open WebUI's switch to HTTP long-polling; here false only logs a warning (README).
ENABLE_WEBSOCKET_SUPPORT = env_bool("ENABLE_WEBSOCKET_SUPPORT", True)
# Frames above this close the socket with 1009. Open WebUI writes Yjs updates as JSON
# lists of ints, up to 4 characters a byte: 16 MiB lets an update over the 2 MiB
# NOTE_UPDATE_MAX_BYTES arrive whole and be refused with an error, not a close.
MAX_FRAME_BYTES = env_int("MAX_FRAME_BYTES", 16 * 1024 * 1024)
# An unauthenticated socket holds memory and a file descriptor; it gets this long.
AUTH_TIMEOUT = env_float("AUTH_TIMEOUT", 10.0)
# Liveness key TTL of an instance; its sessions vanish within 2x this after a crash.
INSTANCE_TTL = env_float("INSTANCE_TTL", 15.0)
# Online-user changes are broadcast at most this often, fleet-wide.
PRESENCE_INTERVAL = env_float("PRESENCE_INTERVAL", 1.0)
# heartbeat writes last_active_at at most this often per user (seconds).
ACTIVE_WRITE_INTERVAL = env_float("ACTIVE_WRITE_INTERVAL", 60.0)
# Frames waiting for a slow client; past this it is closed (1013), not grown for ever.
OUTBOUND_QUEUE_MAX = env_int("OUTBOUND_QUEUE_MAX", 4096)
# HTTP transport (docs/protocol.md §10, README): keep-alive period (s; proxies cut
# silent responses), POST bounds, inbound queue, wait for a forwarded POST (s).
HTTP_KEEPALIVE = env_float("HTTP_KEEPALIVE", 15.0)
HTTP_POST_MAX_BYTES = env_int("HTTP_POST_MAX_BYTES", MAX_FRAME_BYTES)
HTTP_POST_MAX_FRAMES = env_int("HTTP_POST_MAX_FRAMES", 256)
HTTP_INBOUND_MAX = env_int("HTTP_INBOUND_MAX", 1024)
HTTP_FORWARD_TIMEOUT = env_float("HTTP_FORWARD_TIMEOUT", 5.0)
# Default wait for a client's reply to a server call (seconds).
CALL_TIMEOUT = env_float("CALL_TIMEOUT", 30.0)
# Under load, the outbox holds room messages this long to send them in fewer batches.
OUTBOX_LINGER = env_float("OUTBOX_LINGER", 0.005)
# While Redis is unreachable the outbox retries a batch this long before failing it.
OUTBOX_RETRY_SECONDS = env_float("OUTBOX_RETRY_SECONDS", 30.0)
# Resumable delivery (docs/protocol.md §8): each room of these kinds (the room
# name's prefix before ":") keeps its last HISTORY_SIZE events for HISTORY_TTL
# seconds, so a socket that returns within that window gets what it missed. 1,000
# events is 20 s of a fast stream, and 5 minutes covers a laptop lid or a network
# switch; Redis holds about 300 bytes per event.
HISTORY_ROOM_KINDS = env_list("HISTORY_ROOM_KINDS", "user,channel")
HISTORY_SIZE = env_int("HISTORY_SIZE", 1000)
HISTORY_TTL = env_float("HISTORY_TTL", 300.0)
# A room's epoch and offset outlive its events, so a socket back after an idle hour
# learns "expired" (reload) rather than a new epoch mid-conversation.
HISTORY_META_TTL = env_float("HISTORY_META_TTL", 86400.0)
# An instance that gets a room's event N+2 before N+1 (two senders raced) waits this
# long for N+1 before reading it from history: batches land within a few ms.
HISTORY_GAP_WAIT = env_float("HISTORY_GAP_WAIT", 0.1)
# A note's update log is merged into its snapshot past this many updates.
NOTE_COMPACT_THRESHOLD = env_int("NOTE_COMPACT_THRESHOLD", 200)
# A note's content follows its document within this many seconds of an update.
NOTE_SAVE_DELAY = env_float("NOTE_SAVE_DELAY", 0.5)
# Structs one Yjs update may hold. Typing makes one per keystroke and a paste one per
# paste; a client catching up after being offline sends more. Integrating structs that
# conflict costs the CRDT quadratic time, so this bounds the work one frame can cause.
NOTE_UPDATE_MAX_STRUCTS = env_int("NOTE_UPDATE_MAX_STRUCTS", 10000)
# pycrdt runs in a child process per server process (notes/crdt_host.py): a call that
# takes longer than this is taken for a hang and the child is replaced. Merging a
# 10,000-update log takes about 0.1 s.
NOTE_CRDT_TIMEOUT = env_float("NOTE_CRDT_TIMEOUT", 10.0)
# Address space of that child: exceeding it ends the child, never the server.
NOTE_CRDT_MEMORY_MB = env_int("NOTE_CRDT_MEMORY_MB", 2048)
# Bytes of one Yjs update (after decoding); Open WebUI's own limit is also 2 MiB.
NOTE_UPDATE_MAX_BYTES = env_int("NOTE_UPDATE_MAX_BYTES", 2 * 1024 * 1024)
# Bytes of one awareness update (cursors, names: a few hundred bytes in practice).
NOTE_AWARENESS_MAX_BYTES = env_int("NOTE_AWARENESS_MAX_BYTES", 64 * 1024)
# Bytes of an Open WebUI `data.content` save ({md, html, json} as JSON); notes of a
# few hundred pages stay below it.
NOTE_CONTENT_MAX_BYTES = env_int("NOTE_CONTENT_MAX_BYTES", 2 * 1024 * 1024)
# Documents one session may have open at once (Open WebUI allows 20 too): each one
# is a room and, on the server, a loaded document.
NOTE_MAX_OPEN_DOCUMENTS = env_int("NOTE_MAX_OPEN_DOCUMENTS", 20)
# Yjs documents each process keeps in memory (least recently used are dropped).
NOTE_DOCUMENT_CACHE = env_int("NOTE_DOCUMENT_CACHE", 1000)
# Streamed text is written to the database at most this often per message (seconds).
STREAM_FLUSH_INTERVAL = env_float("STREAM_FLUSH_INTERVAL", 0.25)
# The built-in fake model: tokens per second and tokens per answer.
FAKE_MODEL_TPS = env_float("FAKE_MODEL_TPS", 50.0)
FAKE_MODEL_TOKENS = env_int("FAKE_MODEL_TOKENS", 60)
# A channel typist is shown as typing this long after their last `typing` frame:
# Open WebUI's front end repeats `typing: true` while its user types, never `false`.
CHANNEL_TYPING_TIMEOUT = env_float("CHANNEL_TYPING_TIMEOUT", 5.0)
# A chat's typing indicator ends this many seconds after the typist's last refresh:
# Open WebUI's client refreshes at most every 2 s and may never send `typing: false`.
CHAT_TYPING_TIMEOUT = env_float("CHAT_TYPING_TIMEOUT", 5.0)
# A session starts typing in a chat (is relayed `typing: true`) at most this often.
CHAT_TYPING_INTERVAL = env_float("CHAT_TYPING_INTERVAL", 0.5)
# Token bucket per socket: sustained frames per second and burst size.
FRAME_RATE = env_float("FRAME_RATE", 100.0)
FRAME_BURST = env_int("FRAME_BURST", 200)

# --- Operations: model usage, the cleanup worker, metrics ----------------------------
# A session's usage mark of a model lapses this long after its last `usage` event
# (clients repeat it about once a second while generating).
USAGE_TTL = env_float("USAGE_TTL", 3.0)
# Changes of the models in use are broadcast at most this often, fleet-wide.
USAGE_INTERVAL = env_float("USAGE_INTERVAL", 1.0)
# Every server process runs a cleanup worker (one leads at a time); false leaves it to
# `manage.py realtime_worker` processes.
WORKER_IN_PROCESS = env_bool("WORKER_IN_PROCESS", True)
# Seconds between two cleanup passes of the leading worker.
WORKER_INTERVAL = env_float("WORKER_INTERVAL", 5.0)
# The leader lock's expiry; renewed at half of it, taken over within it when the
# leader dies.
WORKER_LOCK_TIMEOUT = env_float("WORKER_LOCK_TIMEOUT", 10.0)
# /metrics answers requests with this bearer token ...
METRICS_TOKEN = env_str("METRICS_TOKEN")
# ... and requests from these addresses (comma-separated; empty: token only).
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "127.0.0.1,::1")

# --- REST and JWT ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "realtime.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bodies are JSON (docs/protocol.md §9), whose types the strict fields check: a
    # form carries only strings, so it could never give an id. Other types are 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    # Tokens carry a fingerprint of the password hash: a password change revokes them.
    "CHECK_REVOKE_TOKEN": True,
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY") or SECRET_KEY,
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    # A client may wrongly put a token in a URL: no line shows a query string
    # (uvicorn's own loggers get the same filter in realtime.logs).
    "filters": {"redact_query_strings": {"()": "realtime.logs.RedactQueryStrings"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_query_strings"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # runserver's access log (daphne's runserver) would print a line per request.
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
