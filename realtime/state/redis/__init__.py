"""Shared state in Redis, for a fleet of instances: one file per concern.

Keys (all under REDIS_KEY_PREFIX, written `p:` here):
    p:s:{sid}            hash  user_id, instance, channel, connected_at, last_seen
    p:s:{sid}:rooms      set   rooms of the session
    p:r:{room}           set   sessions in the room
    p:ru:{room}          hash  user_id -> sessions of that user in the room
    p:u:{uid}            set   sessions of the user
    p:online             set   users with a session
    p:instances          hash  instance id -> its channel-layer channel
    p:i:{iid}:alive      string with a TTL, renewed by the live instance
    p:i:{iid}:sessions   set   sessions held by the instance
    p:presence:*         version counter, last broadcast version, broadcast lock
    p:throttle:{key}     string with a TTL
    p:rt:{room}          set   instance channels the room's events go to
    p:i:{iid}:routes     set   rooms routed to the instance
    p:routes:version     counter bumped by every route change
    p:routes:incarnation random: which era of the counter (Redis lost its data)
    p:t:{tid}            hash  item_id, user_id, instance, channel, created_at
    p:tasks              set   running task ids
    p:item:{item}:tasks  set   running tasks of an item
    p:i:{iid}:tasks      set   tasks run by the instance
    p:usage              zset  "{sid}|{model}" -> when the mark expires (Unix time)
    p:s:{sid}:usage      set   models the session marked
    p:usage:sent, :lock  string  last broadcast models, broadcast lock
    p:lock:{name}        string with a TTL: the owner of a leader lock
    p:hm:{room}          hash  the room's history epoch and last offset
    p:h:{room}           list  the room's window of events (history.py)

client.py holds the connections, scripts.py every Lua script and the one way they
run; sessions.py, rooms.py, routes.py, presence.py, instances.py, tasks.py, usage.py
locks.py and history.py each implement one protocol of realtime.state.base.
"""

from realtime.state.redis.client import (
    MAX_CONNECTIONS,
    POOL_TIMEOUT,
    PREFIX,
    SENTINEL_MASTER,
)
from realtime.state.redis.history import RedisHistory
from realtime.state.redis.instances import RedisInstances
from realtime.state.redis.locks import RedisLocks
from realtime.state.redis.presence import RedisPresence
from realtime.state.redis.rooms import RedisRooms
from realtime.state.redis.routes import ROUTES_REBUILD_WAIT, RedisRoutes
from realtime.state.redis.sessions import RedisSessions
from realtime.state.redis.tasks import RedisTasks
from realtime.state.redis.usage import RedisUsage

__all__ = ["RedisState"]


class RedisState(
    RedisSessions,
    RedisRooms,
    RedisRoutes,
    RedisHistory,
    RedisPresence,
    RedisInstances,
    RedisTasks,
    RedisUsage,
    RedisLocks,
):
    """The StateStore of a fleet, in one Redis (or a Sentinel-managed master)."""

    def __init__(
        self,
        *,
        url: str = "",
        sentinels: list[tuple[str, int]] | None = None,
        sentinel_master: str = SENTINEL_MASTER,
        prefix: str = PREFIX,
        max_connections: int = MAX_CONNECTIONS,
        pool_timeout: float = POOL_TIMEOUT,
        routes_rebuild_wait: float = ROUTES_REBUILD_WAIT,
    ) -> None:
        super().__init__(
            url=url,
            sentinels=sentinels,
            sentinel_master=sentinel_master,
            prefix=prefix,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            routes_rebuild_wait=routes_rebuild_wait,
        )
