"""Shared state in Redis, for a fleet of instances.

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
    p:t:{tid}            hash  item_id, user_id, instance, channel, created_at
    p:tasks              set   running task ids
    p:item:{item}:tasks  set   running tasks of an item
    p:i:{iid}:tasks      set   tasks run by the instance
    p:usage              zset  "{sid}|{model}" -> when the mark expires (Unix time)
    p:s:{sid}:usage      set   models the session marked
    p:usage:sent, :lock  string  last broadcast models, broadcast lock
    p:lock:{name}        string with a TTL: the owner of a leader lock

Multi-key changes run as Lua scripts so that a session is added, removed or reaped
atomically: two instances reaping the same dead instance, or a user connecting on one
instance while leaving another, cannot leave presence wrong. Scripts build key names
from the prefix, so Redis Cluster is not supported (Sentinel is).
"""

import asyncio
import time
import weakref
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import NoScriptError

from realtime.state.base import (
    ReapedInstance,
    RemovedSession,
    RoutesRebuilding,
    SessionRecord,
    TaskRecord,
)

# Rooms whose routes a process keeps in memory (cleared when it grows past this).
ROUTE_CACHE_MAX = 50_000
# The defaults of settings.REDIS_MAX_CONNECTIONS and REDIS_POOL_TIMEOUT (the settings
# are the truth; get_state passes them): a pool that waits for one of 1000 connections
# up to 10 s rather than failing a burst of 200 streams or a reconnect storm.
MAX_CONNECTIONS = 1000
POOL_TIMEOUT = 10.0

# Shared by the remove and reap scripts: drop one session, report what changed.
_REMOVE_FN = """
local function remove_session(p, sid)
  local skey = p .. ':s:' .. sid
  local uid = redis.call('HGET', skey, 'user_id')
  if not uid then return nil end
  local inst = redis.call('HGET', skey, 'instance')
  local rooms = redis.call('SMEMBERS', skey .. ':rooms')
  for _, room in ipairs(rooms) do
    redis.call('SREM', p .. ':r:' .. room, sid)
    local ru = p .. ':ru:' .. room
    if redis.call('HINCRBY', ru, uid, -1) <= 0 then redis.call('HDEL', ru, uid) end
  end
  for _, model in ipairs(redis.call('SMEMBERS', skey .. ':usage')) do
    redis.call('ZREM', p .. ':usage', sid .. '|' .. model)
  end
  redis.call('DEL', skey, skey .. ':rooms', skey .. ':usage')
  redis.call('SREM', p .. ':i:' .. inst .. ':sessions', sid)
  local ukey = p .. ':u:' .. uid
  redis.call('SREM', ukey, sid)
  local offline = 0
  if redis.call('SCARD', ukey) == 0 then
    redis.call('SREM', p .. ':online', uid)
    redis.call('INCR', p .. ':presence:version')
    offline = 1
  end
  return {uid, offline, rooms}
end
"""

# Drop one task's keys (finished, stopped, or its instance died).
_TASK_REMOVE_FN = """
local function remove_task(p, tid)
  local tkey = p .. ':t:' .. tid
  local item = redis.call('HGET', tkey, 'item_id')
  local inst = redis.call('HGET', tkey, 'instance')
  redis.call('DEL', tkey)
  redis.call('SREM', p .. ':tasks', tid)
  if item then
    local ikey = p .. ':item:' .. item .. ':tasks'
    redis.call('SREM', ikey, tid)
  end
  if inst then redis.call('SREM', p .. ':i:' .. inst .. ':tasks', tid) end
end
"""

_TASK_ADD = """
local p, tid = ARGV[1], ARGV[2]
redis.call('HSET', p .. ':t:' .. tid, 'item_id', ARGV[3], 'user_id', ARGV[4],
           'instance', ARGV[5], 'channel', ARGV[6], 'created_at', ARGV[7])
redis.call('SADD', p .. ':tasks', tid)
redis.call('SADD', p .. ':item:' .. ARGV[3] .. ':tasks', tid)
redis.call('SADD', p .. ':i:' .. ARGV[5] .. ':tasks', tid)
return 1
"""

_TASK_REMOVE = (
    _TASK_REMOVE_FN
    + """
remove_task(ARGV[1], ARGV[2])
return 1
"""
)

_ADD = """
local p, sid, uid, iid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', p .. ':s:' .. sid, 'user_id', uid, 'instance', iid,
           'channel', ARGV[5], 'connected_at', ARGV[6])
redis.call('SADD', p .. ':i:' .. iid .. ':sessions', sid)
redis.call('SADD', p .. ':u:' .. uid, sid)
local online = redis.call('SADD', p .. ':online', uid)
if online == 1 then redis.call('INCR', p .. ':presence:version') end
return online
"""

_REMOVE = (
    _REMOVE_FN
    + """
return remove_session(ARGV[1], ARGV[2])
"""
)

_JOIN = """
local p, room, sid = ARGV[1], ARGV[2], ARGV[3]
local uid = redis.call('HGET', p .. ':s:' .. sid, 'user_id')
if not uid then return 0 end
if redis.call('SADD', p .. ':r:' .. room, sid) == 0 then return 0 end
redis.call('SADD', p .. ':s:' .. sid .. ':rooms', room)
redis.call('HINCRBY', p .. ':ru:' .. room, uid, 1)
return 1
"""

_LEAVE = """
local p, room, sid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SREM', p .. ':r:' .. room, sid) == 0 then return 0 end
redis.call('SREM', p .. ':s:' .. sid .. ':rooms', room)
local uid = redis.call('HGET', p .. ':s:' .. sid, 'user_id')
if uid then
  local ru = p .. ':ru:' .. room
  if redis.call('HINCRBY', ru, uid, -1) <= 0 then redis.call('HDEL', ru, uid) end
end
return 1
"""

# ARGV[3] = '1' to reap only if the liveness key is gone; '0' to remove regardless.
_REAP = (
    _REMOVE_FN
    + _TASK_REMOVE_FN
    + """
local p, iid = ARGV[1], ARGV[2]
if ARGV[3] == '1' and redis.call('EXISTS', p .. ':i:' .. iid .. ':alive') == 1 then
  return nil
end
local channel = redis.call('HGET', p .. ':instances', iid) or ''
local sids = redis.call('SMEMBERS', p .. ':i:' .. iid .. ':sessions')
local rooms, offline, seen = {}, {}, {}
for _, sid in ipairs(sids) do
  local r = remove_session(p, sid)
  if r then
    if r[2] == 1 then table.insert(offline, r[1]) end
    for _, room in ipairs(r[3]) do
      if not seen[room] then seen[room] = true; table.insert(rooms, room) end
    end
  end
end
for _, tid in ipairs(redis.call('SMEMBERS', p .. ':i:' .. iid .. ':tasks')) do
  remove_task(p, tid)
end
for _, room in ipairs(redis.call('SMEMBERS', p .. ':i:' .. iid .. ':routes')) do
  redis.call('SREM', p .. ':rt:' .. room, channel)
end
redis.call('INCR', p .. ':routes:version')
redis.call('DEL', p .. ':i:' .. iid .. ':sessions', p .. ':i:' .. iid .. ':tasks',
           p .. ':i:' .. iid .. ':routes')
redis.call('HDEL', p .. ':instances', iid)
return {channel, #sids, offline, rooms}
"""
)

# Broadcast presence only if it changed and nobody broadcast within the interval.
_PRESENCE_CLAIM = """
local p = ARGV[1]
local version = tonumber(redis.call('GET', p .. ':presence:version') or '0')
local sent = tonumber(redis.call('GET', p .. ':presence:sent') or '0')
if version == sent then return 0 end
local lock = p .. ':presence:lock'
if not redis.call('SET', lock, '1', 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SET', p .. ':presence:sent', version)
return 1
"""

# HSET on a removed session would recreate its hash and leak it.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
"""

_USAGE_MARK = """
local p, sid, model = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. ':s:' .. sid) == 0 then return 0 end
redis.call('ZADD', p .. ':usage', ARGV[4], sid .. '|' .. model)
redis.call('SADD', p .. ':s:' .. sid .. ':usage', model)
return 1
"""

# ARGV[3] = '1' lists the expired marks without deleting them.
_USAGE_EXPIRE = """
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. ':usage', '-inf', ARGV[2])
if ARGV[3] == '1' then return gone end
for _, member in ipairs(gone) do
  local sep = string.find(member, '|', 1, true)
  local sid, model = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  redis.call('SREM', p .. ':s:' .. sid .. ':usage', model)
  redis.call('ZREM', p .. ':usage', member)
end
return gone
"""

# Broadcast models in use only if they differ from the last broadcast and nobody
# broadcast within the interval. Replies {'ok', model...} or nil.
_USAGE_CLAIM = """
local p = ARGV[1]
local live = redis.call('ZRANGEBYSCORE', p .. ':usage', '(' .. ARGV[2], '+inf')
local seen, models = {}, {}
for _, member in ipairs(live) do
  local model = string.sub(member, string.find(member, '|', 1, true) + 1)
  if not seen[model] then seen[model] = true; table.insert(models, model) end
end
table.sort(models)
local joined = table.concat(models, '\\n')
local sent = redis.call('GET', p .. ':usage:sent') or ''
if joined == sent then return nil end
if not redis.call('SET', p .. ':usage:lock', '1', 'NX', 'PX', ARGV[3]) then
  return nil
end
redis.call('SET', p .. ':usage:sent', joined)
local reply = {'ok'}
for _, model in ipairs(models) do table.insert(reply, model) end
return reply
"""

# Only the owner renews or releases a lock.
_LOCK_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_LOCK_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# Members that no longer hold the room; ARGV[3] = '1' only lists them. The per-user
# counts of the room are rebuilt from the members that stay.
_ROOM_PRUNE = """
local p, room = ARGV[1], ARGV[2]
local rkey = p .. ':r:' .. room
local stale = {}
for _, sid in ipairs(redis.call('SMEMBERS', rkey)) do
  local skey = p .. ':s:' .. sid
  if redis.call('EXISTS', skey) == 0
     or redis.call('SISMEMBER', skey .. ':rooms', room) == 0 then
    table.insert(stale, sid)
  end
end
if ARGV[3] == '1' or #stale == 0 then return stale end
for _, sid in ipairs(stale) do redis.call('SREM', rkey, sid) end
local ru = p .. ':ru:' .. room
redis.call('DEL', ru)
for _, sid in ipairs(redis.call('SMEMBERS', rkey)) do
  redis.call('HINCRBY', ru, redis.call('HGET', p .. ':s:' .. sid, 'user_id'), 1)
end
return stale
"""


class RedisState:
    """The StateStore of a fleet, in one Redis (or a Sentinel-managed master)."""

    def __init__(
        self,
        *,
        url: str = "",
        sentinels: list[tuple[str, int]] | None = None,
        sentinel_master: str = "mymaster",
        prefix: str = "rt",
        max_connections: int = MAX_CONNECTIONS,
        pool_timeout: float = POOL_TIMEOUT,
        routes_rebuild_wait: float = 15.0,
    ) -> None:
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.url = url
        self.sentinels = sentinels or []
        self.sentinel_master = sentinel_master
        self.p = prefix
        # redis.asyncio connections belong to the loop that opened them; sync callers
        # (async_to_sync in management commands, tests) run their own loops.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._scripts: dict[str, object] = {}
        self._route_cache: dict[str, set[str]] = {}
        self._route_version: str | None = None
        self._routes_lost_at: float | None = None
        self.routes_rebuild_wait = routes_rebuild_wait

    def client(self) -> aioredis.Redis:
        """The client for the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._new_client()
            self._clients[loop] = client
        return client

    def _new_client(self) -> aioredis.Redis:
        opts = {
            "decode_responses": True,
            "health_check_interval": 30,
            "max_connections": self.max_connections,
        }
        if self.sentinels:
            parsed = urlparse(self.url) if self.url else None
            if parsed and parsed.password:
                opts["password"] = parsed.password
            if parsed and parsed.path.strip("/"):
                opts["db"] = int(parsed.path.strip("/"))
            return Sentinel(self.sentinels).master_for(self.sentinel_master, **opts)
        # Waits for a free connection rather than failing a burst of commands.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, timeout=self.pool_timeout, **opts
        )
        return aioredis.Redis(connection_pool=pool)

    async def _run(self, name: str, source: str, *args) -> object:
        client = self.client()
        script = self._script(client, name, source)
        return await script(keys=[], args=[self.p, *args], client=client)

    async def session_add(
        self, *, sid: str, user_id: int, instance_id: str, channel: str
    ) -> bool:
        """Record a session; True when its user just came online."""
        added = await self._run(
            "add", _ADD, sid, user_id, instance_id, channel, time.time()
        )
        return added == 1

    async def session_register(
        self,
        *,
        sid: str,
        user_id: int,
        instance_id: str,
        channel: str,
        room: str,
        route: bool,
    ) -> bool:
        """session_add, route_add (if `route`) and room_join in one pipeline: one
        round trip per connect instead of three (each costs ~0.2 ms of CPU here,
        the largest part of an authenticated connect)."""
        client = self.client()
        add = self._script(client, "add", _ADD)
        join = self._script(client, "join", _JOIN)
        for attempt in (1, 2):
            # EVALSHA directly: a pipeline given Script objects first asks SCRIPT
            # EXISTS, a second round trip on every connect.
            pipe = client.pipeline(transaction=False)
            pipe.evalsha(
                add.sha, 0, self.p, sid, user_id, instance_id, channel, time.time()
            )
            if route:
                pipe.sadd(f"{self.p}:rt:{room}", channel)
                pipe.sadd(f"{self.p}:i:{instance_id}:routes", room)
                pipe.incr(f"{self.p}:routes:version")
            pipe.evalsha(join.sha, 0, self.p, room, sid)
            try:
                results = await pipe.execute()
            except NoScriptError:
                # Redis lost its scripts (a restart): load them, run it all again
                # (every step is idempotent but the version bump, which is harmless).
                if attempt == 2:
                    raise
                await client.script_load(_ADD)
                await client.script_load(_JOIN)
                continue
            return results[0] == 1
        raise AssertionError("unreachable")

    def _script(self, client, name: str, source: str):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(source)
        return script

    async def session_remove(self, *, sid: str) -> RemovedSession | None:
        """Forget a session and its room memberships."""
        result = await self._run("remove", _REMOVE, sid)
        if not result:
            return None
        uid, offline, rooms = result
        return RemovedSession(sid, int(uid), offline == 1, sorted(rooms))

    async def session_get(self, *, sid: str) -> SessionRecord | None:
        """The record of one session."""
        data = await self.client().hgetall(f"{self.p}:s:{sid}")
        if not data:
            return None
        return SessionRecord(
            sid=sid,
            user_id=int(data["user_id"]),
            instance_id=data["instance"],
            channel=data["channel"],
            connected_at=float(data["connected_at"]),
            last_seen=float(data.get("last_seen", 0)),
        )

    async def session_touch(self, *, sid: str) -> None:
        """Record that a known session was seen now."""
        client = self.client()
        script = self._scripts.get("touch")
        if script is None:
            script = self._scripts["touch"] = client.register_script(_TOUCH)
        await script(keys=[f"{self.p}:s:{sid}"], args=[time.time()], client=client)

    async def room_join(self, *, room: str, sid: str) -> bool:
        """Put a known session in a room."""
        return await self._run("join", _JOIN, room, sid) == 1

    async def room_leave(self, *, room: str, sid: str) -> bool:
        """Take a session out of a room."""
        return await self._run("leave", _LEAVE, room, sid) == 1

    async def room_sessions(self, *, room: str) -> set[str]:
        """The sessions in a room, on every instance."""
        return set(await self.client().smembers(f"{self.p}:r:{room}"))

    async def room_user_ids(self, *, room: str) -> set[int]:
        """The users with a session in a room."""
        return {int(uid) for uid in await self.client().hkeys(f"{self.p}:ru:{room}")}

    async def session_rooms(self, *, sid: str) -> set[str]:
        """The rooms a session is in."""
        return set(await self.client().smembers(f"{self.p}:s:{sid}:rooms"))

    async def user_sessions(self, *, user_id: int) -> set[str]:
        """The live sessions of a user, on every instance."""
        return set(await self.client().smembers(f"{self.p}:u:{user_id}"))

    async def online_user_ids(self) -> set[int]:
        """Users with at least one live session anywhere."""
        return {int(uid) for uid in await self.client().smembers(f"{self.p}:online")}

    async def instance_refresh(
        self, *, instance_id: str, channel: str, ttl: float
    ) -> bool:
        """Renew the liveness key; False if it had lapsed (or Redis lost it)."""
        pipe = self.client().pipeline(transaction=True)
        pipe.set(f"{self.p}:i:{instance_id}:alive", "1", px=int(ttl * 1000), get=True)
        pipe.hset(f"{self.p}:instances", instance_id, channel)
        previous, _ = await pipe.execute()
        return previous is not None

    async def instance_remove(self, *, instance_id: str) -> ReapedInstance | None:
        """Remove an instance and all its sessions now."""
        await self.client().delete(f"{self.p}:i:{instance_id}:alive")
        return await self._reap(instance_id, only_if_dead=False)

    async def reap_dead_instances(self) -> list[ReapedInstance]:
        """Remove the sessions of every instance whose liveness key expired."""
        client = self.client()
        instances = await client.hkeys(f"{self.p}:instances")
        if not instances:
            return []
        pipe = client.pipeline(transaction=False)
        for iid in instances:
            pipe.exists(f"{self.p}:i:{iid}:alive")
        alive = await pipe.execute()
        reaped = []
        for iid, is_alive in zip(instances, alive, strict=True):
            if not is_alive:
                result = await self._reap(iid, only_if_dead=True)
                if result is not None:
                    reaped.append(result)
        return reaped

    async def _reap(
        self, instance_id: str, *, only_if_dead: bool
    ) -> ReapedInstance | None:
        result = await self._run(
            "reap", _REAP, instance_id, "1" if only_if_dead else "0"
        )
        if not result:
            return None
        channel, count, offline, rooms = result
        return ReapedInstance(
            instance_id, channel, sorted(rooms), int(count), [int(u) for u in offline]
        )

    async def throttle(self, *, key: str, seconds: float) -> bool:
        """True at most once per `seconds` per key, fleet-wide."""
        ok = await self.client().set(
            f"{self.p}:throttle:{key}", "1", nx=True, px=int(seconds * 1000)
        )
        return bool(ok)

    async def presence_claim(self, *, interval: float) -> bool:
        """True if presence changed since the last broadcast and this caller won."""
        return await self._run("presence", _PRESENCE_CLAIM, int(interval * 1000)) == 1

    async def route_add(self, *, room: str, channel: str, instance_id: str) -> None:
        """Send the room's events to this instance channel."""
        pipe = self.client().pipeline(transaction=True)
        pipe.sadd(f"{self.p}:rt:{room}", channel)
        pipe.sadd(f"{self.p}:i:{instance_id}:routes", room)
        pipe.incr(f"{self.p}:routes:version")
        await pipe.execute()

    async def route_remove(self, *, room: str, channel: str, instance_id: str) -> None:
        """Stop sending the room's events to this instance channel."""
        pipe = self.client().pipeline(transaction=True)
        pipe.srem(f"{self.p}:rt:{room}", channel)
        pipe.srem(f"{self.p}:i:{instance_id}:routes", room)
        pipe.incr(f"{self.p}:routes:version")
        await pipe.execute()

    async def routes_for(self, *, rooms: list[str]) -> dict[str, set[str]]:
        """The instance channels of each room.

        Routes change only when an instance gets its first or loses its last member
        of a room, and every change bumps one version key; so this process caches
        routes and, while the version holds, asks Redis for nothing but the version
        and the rooms it has not seen (one round trip)."""
        if not rooms:
            return {}
        cache = self._route_cache
        missing = [room for room in rooms if room not in cache]
        pipe = self.client().pipeline(transaction=False)
        pipe.get(f"{self.p}:routes:version")
        for room in missing:
            pipe.smembers(f"{self.p}:rt:{room}")
        version, *found = await pipe.execute()
        if version is None and self._route_version is not None:
            # The routes version vanished: Redis lost its data (a restart, a failover
            # to an empty replica). Instances re-register their routes as soon as they
            # notice; until then "no route" does not mean "nobody to deliver to".
            loop = asyncio.get_running_loop()
            if self._routes_lost_at is None:
                self._routes_lost_at = loop.time()
            if loop.time() - self._routes_lost_at < self.routes_rebuild_wait:
                raise RoutesRebuilding("routes are being rebuilt after Redis lost them")
        self._routes_lost_at = None
        if version != self._route_version:
            # Something moved: drop everything cached and look the rest up as well.
            cache.clear()
            self._route_version = version
            known = dict(zip(missing, map(set, found), strict=True))
            rest = [room for room in rooms if room not in known]
            if rest:
                pipe = self.client().pipeline(transaction=False)
                for room in rest:
                    pipe.smembers(f"{self.p}:rt:{room}")
                known.update(zip(rest, map(set, await pipe.execute()), strict=True))
            found_map = known
        else:
            found_map = dict(zip(missing, map(set, found), strict=True))
        if len(cache) > ROUTE_CACHE_MAX:
            cache.clear()
        cache.update(found_map)
        return {room: cache.get(room) or found_map.get(room, set()) for room in rooms}

    async def task_add(self, *, record: TaskRecord) -> None:
        """Record a running task."""
        await self._run(
            "task_add",
            _TASK_ADD,
            record.task_id,
            record.item_id,
            "" if record.user_id is None else record.user_id,
            record.instance_id,
            record.channel,
            record.created_at,
        )

    async def task_remove(self, *, task_id: str) -> None:
        """Forget a finished task; its keys go with it."""
        await self._run("task_remove", _TASK_REMOVE, task_id)

    async def task_get(self, *, task_id: str) -> TaskRecord | None:
        """One running task."""
        data = await self.client().hgetall(f"{self.p}:t:{task_id}")
        return _task_record(task_id, data) if data else None

    async def task_list(self) -> list[TaskRecord]:
        """Every running task, on every instance."""
        client = self.client()
        ids = sorted(await client.smembers(f"{self.p}:tasks"))
        pipe = client.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(f"{self.p}:t:{tid}")
        rows = await pipe.execute() if ids else []
        records = [_task_record(t, d) for t, d in zip(ids, rows, strict=True) if d]
        return sorted(records, key=lambda r: r.created_at)

    async def task_ids_for_item(self, *, item_id: str) -> set[str]:
        """Running tasks of an item."""
        return set(await self.client().smembers(f"{self.p}:item:{item_id}:tasks"))

    async def usage_mark(self, *, model: str, sid: str, ttl: float) -> bool:
        """Mark that a known session uses a model for the next `ttl` seconds."""
        return (
            await self._run("usage_mark", _USAGE_MARK, sid, model, time.time() + ttl)
            == 1
        )

    async def usage_models(self) -> dict[str, set[str]]:
        """Models with a live mark, and their sessions."""
        live = await self.client().zrangebyscore(
            f"{self.p}:usage", f"({time.time()}", "+inf"
        )
        models: dict[str, set[str]] = {}
        for member in live:
            sid, _, model = member.partition("|")
            models.setdefault(model, set()).add(sid)
        return models

    async def usage_expire(self, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Delete expired marks (or only list them)."""
        gone = await self._run(
            "usage_expire", _USAGE_EXPIRE, time.time(), "1" if dry_run else "0"
        )
        return sorted(tuple(member.partition("|")[::2]) for member in gone)

    async def usage_claim(self, *, interval: float) -> list[str] | None:
        """The models in use if they changed and this caller may broadcast now."""
        reply = await self._run(
            "usage_claim", _USAGE_CLAIM, time.time(), int(interval * 1000)
        )
        return list(reply[1:]) if reply else None

    async def lock_acquire(self, *, name: str, owner: str, ttl: float) -> bool:
        """SET NX PX: take the lock if nobody holds it."""
        ok = await self.client().set(
            f"{self.p}:lock:{name}", owner, nx=True, px=int(ttl * 1000)
        )
        return bool(ok)

    async def lock_renew(self, *, name: str, owner: str, ttl: float) -> bool:
        """Extend the lock's expiry if `owner` still holds it."""
        return await self._lock_script(_LOCK_RENEW, name, owner, int(ttl * 1000))

    async def lock_release(self, *, name: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it."""
        return await self._lock_script(_LOCK_RELEASE, name, owner)

    async def _lock_script(self, source: str, name: str, *args) -> bool:
        client = self.client()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        keys = [f"{self.p}:lock:{name}"]
        return await script(keys=keys, args=list(args), client=client) == 1

    async def lock_owner(self, *, name: str) -> tuple[str | None, float]:
        """Who holds the lock and the seconds left before it expires."""
        pipe = self.client().pipeline(transaction=True)
        pipe.get(f"{self.p}:lock:{name}")
        pipe.pttl(f"{self.p}:lock:{name}")
        owner, left = await pipe.execute()
        return owner, max(left, 0) / 1000 if owner else 0.0

    async def session_list(self) -> list[SessionRecord]:
        """Every session of every registered instance, oldest first."""
        client = self.client()
        instances = await client.hkeys(f"{self.p}:instances")
        pipe = client.pipeline(transaction=False)
        for iid in instances:
            pipe.smembers(f"{self.p}:i:{iid}:sessions")
        sids = sorted({sid for found in await pipe.execute() for sid in found})
        pipe = client.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(f"{self.p}:s:{sid}")
        rows = await pipe.execute() if sids else []
        records = [
            SessionRecord(
                sid=sid,
                user_id=int(data["user_id"]),
                instance_id=data["instance"],
                channel=data["channel"],
                connected_at=float(data["connected_at"]),
                last_seen=float(data.get("last_seen", 0)),
            )
            for sid, data in zip(sids, rows, strict=True)
            if data
        ]
        return sorted(records, key=lambda r: r.connected_at)

    async def room_counts(self) -> dict[str, int]:
        """Rooms with members and their session counts (SCAN: for operators)."""
        client = self.client()
        start = len(f"{self.p}:r:")
        rooms = [
            key[start:]
            async for key in client.scan_iter(match=f"{self.p}:r:*", count=1000)
        ]
        pipe = client.pipeline(transaction=False)
        for room in rooms:
            pipe.scard(f"{self.p}:r:{room}")
        counts = await pipe.execute() if rooms else []
        return {room: n for room, n in zip(rooms, counts, strict=True) if n}

    async def instance_list(self) -> dict[str, bool]:
        """Registered instances, and whether their liveness key is fresh."""
        client = self.client()
        instances = sorted(await client.hkeys(f"{self.p}:instances"))
        pipe = client.pipeline(transaction=False)
        for iid in instances:
            pipe.exists(f"{self.p}:i:{iid}:alive")
        alive = await pipe.execute() if instances else []
        return {iid: bool(a) for iid, a in zip(instances, alive, strict=True)}

    async def room_prune(self, *, room: str, dry_run: bool = False) -> list[str]:
        """Remove (or list) members that no longer hold the room."""
        stale = await self._run(
            "room_prune", _ROOM_PRUNE, room, "1" if dry_run else "0"
        )
        return sorted(stale)

    async def task_prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove (or list) task records of instances that are not alive, and ids
        in the task index without a record."""
        client = self.client()
        ids = sorted(await client.smembers(f"{self.p}:tasks"))
        pipe = client.pipeline(transaction=False)
        for tid in ids:
            pipe.hget(f"{self.p}:t:{tid}", "instance")
        owners = await pipe.execute() if ids else []
        instances = {o for o in owners if o}
        pipe = client.pipeline(transaction=False)
        for iid in instances:
            pipe.exists(f"{self.p}:i:{iid}:alive")
        alive = dict(zip(instances, await pipe.execute(), strict=True))
        stale = [
            tid
            for tid, owner in zip(ids, owners, strict=True)
            if not owner or not alive[owner]
        ]
        if not dry_run:
            for tid in stale:
                await self.task_remove(task_id=tid)
        return stale

    async def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        client = self.client()
        async for key in client.scan_iter(match=f"{self.p}:*", count=500):
            await client.delete(key)

    async def close(self) -> None:
        """Close the client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


def _task_record(task_id: str, data: dict) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        item_id=data["item_id"],
        user_id=int(data["user_id"]) if data.get("user_id") else None,
        instance_id=data["instance"],
        channel=data["channel"],
        created_at=float(data["created_at"]),
    )
