"""The state store chosen by settings: Redis when configured, else process memory."""

from django.conf import settings
from django.core.signals import setting_changed

from realtime.state.base import (
    HistoryRead,
    ReapedInstance,
    RemovedSession,
    RoutesRebuilding,
    SessionRecord,
    StateStore,
    TaskRecord,
)
from realtime.state.memory import MemoryState
from realtime.state.redis import RedisState
from realtime.state.redis.client import UNAVAILABLE

__all__ = [
    "UNAVAILABLE",
    "HistoryRead",
    "MemoryState",
    "ReapedInstance",
    "RedisState",
    "RemovedSession",
    "RoutesRebuilding",
    "SessionRecord",
    "StateStore",
    "TaskRecord",
    "get_state",
]

_store: StateStore | None = None
_SETTINGS = {
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_KEY_PREFIX",
    "REDIS_CLUSTER",
    "REDIS_CLUSTER_NODES",
}


def get_state() -> StateStore:
    """The process-wide state store."""
    global _store
    if _store is None:
        if settings.REDIS_URL or settings.REDIS_SENTINELS or settings.REDIS_CLUSTER:
            _store = RedisState(
                url=settings.REDIS_URL,
                sentinels=settings.REDIS_SENTINELS,
                cluster=settings.REDIS_CLUSTER,
                cluster_nodes=settings.REDIS_CLUSTER_NODES,
                sentinel_master=settings.REDIS_SENTINEL_MASTER,
                prefix=settings.REDIS_KEY_PREFIX,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                pool_timeout=settings.REDIS_POOL_TIMEOUT,
                # Instances re-register within one liveness tick of noticing.
                routes_rebuild_wait=settings.INSTANCE_TTL,
            )
        else:
            _store = MemoryState()
    return _store


def reset_state(**kwargs) -> None:
    """Forget the store so the next get_state() follows changed settings."""
    global _store
    if kwargs.get("setting") in (None, *_SETTINGS):
        _store = None


setting_changed.connect(reset_state)
