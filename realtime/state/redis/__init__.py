"""Shared state in Redis, for a fleet of instances: one file per concern.

Keys, under REDIS_KEY_PREFIX (`rt` here). The same layout on one Redis and on a
Redis Cluster: a key's hash tag (the part in braces) decides its cluster slot, and
keys that one script or pipeline changes together share one.

One slot, tagged `{rt}`: membership and everything a membership script touches.
Adding, removing and reaping a session changes its hash, its rooms, the rooms'
members, its user's sessions, the online set, its instance's sets, its usage marks
and the presence version at once (scripts.py), and reaping an instance also its
routes and tasks. These change per connect and join, not per event.
    {rt}:s:<sid>            hash  user_id, instance, channel, connected_at, last_seen
    {rt}:s:<sid>:rooms      set   rooms of the session
    {rt}:r:<room>           set   sessions in the room
    {rt}:ru:<room>          hash  user_id -> sessions of that user in the room
    {rt}:u:<uid>            set   sessions of the user
    {rt}:online             set   users with a session
    {rt}:instances          hash  instance id -> its channel-layer channel
    {rt}:i:<iid>:alive      string with a TTL, renewed by the live instance
    {rt}:i:<iid>:sessions   set   sessions held by the instance
    {rt}:presence:*         version counter, last broadcast version, broadcast lock
    {rt}:throttle:<key>     string with a TTL
    {rt}:rt:<room>          set   instance channels the room's events go to
    {rt}:i:<iid>:routes     set   rooms routed to the instance
    {rt}:routes:version     counter bumped by every route change
    {rt}:routes:incarnation random: which era of the counter (Redis lost its data)
    {rt}:t:<tid>            hash  item_id, user_id, instance, channel, created_at
    {rt}:tasks              set   running task ids
    {rt}:item:<item>:tasks  set   running tasks of an item
    {rt}:i:<iid>:tasks      set   tasks run by the instance
    {rt}:usage              zset  "<sid>|<model>" -> when the mark expires (Unix time)
    {rt}:s:<sid>:usage      set   models the session marked
    {rt}:usage:sent, :lock  string  last broadcast models, broadcast lock
    {rt}:lock:<name>        string with a TTL: the owner of a leader lock

A slot per room, tagged by the room (history.py `room_tag`): the hot path, one
append per emitted event, spread over every primary.
    rt:hm:{<room>}          hash  the room's history epoch and last offset
    rt:h:{<room>}           list  the room's window of events

The channel layer's keys (rt:asgi:...) are channels-redis's on one Redis, and on a
cluster tagged per channel and per group (realtime/cluster_layer.py), so each
instance's inbox lives on one primary and the instances spread over all of them.

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
    """The StateStore of a fleet, in one Redis, a Sentinel-managed master or a
    Redis Cluster."""

    def __init__(
        self,
        *,
        url: str = "",
        sentinels: list[tuple[str, int]] | None = None,
        cluster: bool = False,
        cluster_nodes: list[tuple[str, int]] | None = None,
        sentinel_master: str = SENTINEL_MASTER,
        prefix: str = PREFIX,
        max_connections: int = MAX_CONNECTIONS,
        pool_timeout: float = POOL_TIMEOUT,
        routes_rebuild_wait: float = ROUTES_REBUILD_WAIT,
    ) -> None:
        super().__init__(
            url=url,
            sentinels=sentinels,
            cluster=cluster,
            cluster_nodes=cluster_nodes,
            sentinel_master=sentinel_master,
            prefix=prefix,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            routes_rebuild_wait=routes_rebuild_wait,
        )
