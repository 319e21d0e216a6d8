"""Prometheus metrics of this process, served at /metrics (realtime.api.metrics).

Each server process (and each `realtime_worker`) has its own registry; Prometheus
scrapes every instance. Label values are bounded: incoming event names are registered
names (anything else counts as `(unknown)`); outgoing ones are free (server code and
`POST /api/realtime/emit/` name them), so only the first MAX_OUT_EVENT_NAMES names get
their own label and later ones count as `(other)`; error codes come from
realtime.errors.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS = Gauge(
    "realtime_connections",
    "Authenticated sockets connected to this instance.",
    registry=REGISTRY,
)
CONNECTS = Counter(
    "realtime_connects", "Sockets that authenticated.", registry=REGISTRY
)
DISCONNECTS = Counter(
    "realtime_disconnects",
    "Authenticated sockets that disconnected.",
    registry=REGISTRY,
)
EVENTS_IN = Counter(
    "realtime_events_in",
    "Client events received, by event name.",
    ["event"],
    registry=REGISTRY,
)
EVENTS_OUT = Counter(
    "realtime_events_out",
    "Server events queued to sockets (one per receiving socket), by event name.",
    ["event"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "realtime_error_replies",
    "Error replies sent to clients, by error code.",
    ["code"],
    registry=REGISTRY,
)
EMIT_LATENCY = Histogram(
    "realtime_emit_latency_seconds",
    "From a room emit in server code to its frame being queued for the sockets of "
    "the receiving instance.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
    registry=REGISTRY,
)
HISTORY_DUPLICATES = Counter(
    "realtime_history_duplicates_total",
    "Room events an instance got twice (a retried batch, a gap filled from history) "
    "and handed out once.",
    registry=REGISTRY,
)
HISTORY_GAPS_LOST = Counter(
    "realtime_history_gaps_lost_total",
    "Room events an instance never got, not even from the room's history window.",
    registry=REGISTRY,
)
RECOVERIES = Counter(
    "realtime_recoveries_total",
    "Rooms a returning socket asked to recover, by outcome (ok, or why not).",
    ["outcome"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "realtime_worker_job_runs",
    "Cleanup worker job runs, by job.",
    ["job"],
    registry=REGISTRY,
)
JOB_FAILURES = Counter(
    "realtime_worker_job_failures",
    "Cleanup worker job runs that failed, by job.",
    ["job"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "realtime_worker_leader",
    "1 while this process's cleanup worker holds the leader lock.",
    registry=REGISTRY,
)
LEADERSHIP_CHANGES = Counter(
    "realtime_worker_leadership_changes",
    "Times this process's cleanup worker gained or lost the leader lock.",
    ["change"],
    registry=REGISTRY,
)

HTTP_POSTS = Counter(
    "realtime_http_posts",
    "POSTs of frames to HTTP sessions received here, by where the session's stream "
    "was (local: this process; forwarded: through the layer to another instance).",
    ["route"],
    registry=REGISTRY,
)

UNKNOWN_EVENT = "(unknown)"


# Outgoing event names with a label of their own; more would grow every scrape.
MAX_OUT_EVENT_NAMES = 200
OTHER_EVENT = "(other)"
_out_names: set[str] = set()


def events_out(event: str):
    """The events-out counter of an event name, bounded (see the module docstring)."""
    if event not in _out_names:
        if len(_out_names) >= MAX_OUT_EVENT_NAMES:
            return EVENTS_OUT.labels(OTHER_EVENT)
        _out_names.add(event)
    return EVENTS_OUT.labels(event)
