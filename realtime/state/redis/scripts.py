"""The Lua scripts of the Redis store (history's are in history.py), and the one way
they are run.

Multi-key changes run as scripts so that a session is added, removed or reaped
atomically: two instances reaping the same dead instance, or a user connecting on one
instance while leaving another, cannot leave presence wrong. Every script takes the
key prefix as ARGV[1] and builds its key names from it. The keys one script touches
share a hash tag (redis/client.py), and KEYS[1] names one of them: a Redis Cluster
client sends the script to the node of that slot, and the script touches no other.

Every script runs by EVALSHA of a SHA computed here. When Redis answers NOSCRIPT (it
restarted, or a failover reached a replica that never loaded them) all the scripts
are loaded in one round trip and the call runs once more: `run` for one script,
`run_pipeline` for a pipeline that queues scripts with `queue` among other commands.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError


class Script:
    """A Lua script and the SHA1 Redis knows it by; every one made is in SCRIPTS
    (a concern may keep its scripts in its own file: redis/history.py)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        SCRIPTS.append(self)


# Every script: what a Redis that lost them gets loaded.
SCRIPTS: list[Script] = []


def flag(value: bool) -> str:
    """A yes/no argument as the scripts read it ('1' or '0')."""
    return "1" if value else "0"


async def run(client: aioredis.Redis, script: Script, keys: list[str], *args) -> Any:
    """Run one script on the slot of its keys: one round trip while Redis has it."""
    return await _loading_if_lost(
        client, lambda: client.evalsha(script.sha, len(keys), *keys, *args)
    )


def queue(pipe: Pipeline, script: Script, keys: list[str], *args) -> None:
    """Queue one script (on the slot of its keys) in a pipeline of `run_pipeline`."""
    # As a raw command: a cluster pipeline blocks its evalsha method, though it
    # routes EVALSHA by its keys like any keyed command.
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


async def run_pipeline(
    client: aioredis.Redis, fill: Callable[[Pipeline], None]
) -> list[Any]:
    """Execute the pipeline (not a transaction) that `fill` queues, scripts among
    its commands; its replies. If Redis lost the scripts, the whole pipeline runs
    again once they are loaded, so each of its commands must be safe to repeat."""

    async def execute() -> list[Any]:
        # EVALSHA directly: a pipeline given redis-py Script objects first asks
        # SCRIPT EXISTS, a second round trip on every call.
        pipe = client.pipeline(transaction=False)
        fill(pipe)
        return await pipe.execute()

    return await _loading_if_lost(client, execute)


async def _loading_if_lost(
    client: aioredis.Redis, call: Callable[[], Awaitable[Any]]
) -> Any:
    try:
        return await call()
    except NoScriptError:
        if isinstance(client, RedisCluster):
            # SCRIPT LOAD goes to every primary (a cluster pipeline takes only
            # commands with keys); rare enough to take one round trip per script.
            for script in SCRIPTS:
                await client.script_load(script.source)
        else:
            pipe = client.pipeline(transaction=False)
            for script in SCRIPTS:
                pipe.script_load(script.source)
            await pipe.execute()
        return await call()


# --- sessions ---------------------------------------------------------------------

ADD = Script(
    """
local p, sid, uid, iid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', p .. ':s:' .. sid, 'user_id', uid, 'instance', iid,
           'channel', ARGV[5], 'connected_at', ARGV[6])
redis.call('SADD', p .. ':i:' .. iid .. ':sessions', sid)
redis.call('SADD', p .. ':u:' .. uid, sid)
local online = redis.call('SADD', p .. ':online', uid)
if online == 1 then redis.call('INCR', p .. ':presence:version') end
return online
"""
)

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

REMOVE = Script(
    _REMOVE_FN
    + """
return remove_session(ARGV[1], ARGV[2])
"""
)

# HSET on a removed session would recreate its hash and leak it.
TOUCH = Script(
    """
local skey = ARGV[1] .. ':s:' .. ARGV[2]
if redis.call('EXISTS', skey) == 0 then return 0 end
return redis.call('HSET', skey, 'last_seen', ARGV[3])
"""
)

# --- rooms ------------------------------------------------------------------------

JOIN = Script(
    """
local p, room, sid = ARGV[1], ARGV[2], ARGV[3]
local uid = redis.call('HGET', p .. ':s:' .. sid, 'user_id')
if not uid then return 0 end
if redis.call('SADD', p .. ':r:' .. room, sid) == 0 then return 0 end
redis.call('SADD', p .. ':s:' .. sid .. ':rooms', room)
redis.call('HINCRBY', p .. ':ru:' .. room, uid, 1)
return 1
"""
)

LEAVE = Script(
    """
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
)

# Members that no longer hold the room; ARGV[3] = '1' only lists them. The per-user
# counts of the room are rebuilt from the members that stay.
ROOM_PRUNE = Script(
    """
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
)

# --- presence ---------------------------------------------------------------------

# Broadcast presence only if it changed and nobody broadcast within the interval.
PRESENCE_CLAIM = Script(
    """
local p = ARGV[1]
local version = tonumber(redis.call('GET', p .. ':presence:version') or '0')
local sent = tonumber(redis.call('GET', p .. ':presence:sent') or '0')
if version == sent then return 0 end
local lock = p .. ':presence:lock'
if not redis.call('SET', lock, '1', 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SET', p .. ':presence:sent', version)
return 1
"""
)

# --- tasks ------------------------------------------------------------------------

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

TASK_ADD = Script(
    """
local p, tid = ARGV[1], ARGV[2]
redis.call('HSET', p .. ':t:' .. tid, 'item_id', ARGV[3], 'user_id', ARGV[4],
           'instance', ARGV[5], 'channel', ARGV[6], 'created_at', ARGV[7])
redis.call('SADD', p .. ':tasks', tid)
redis.call('SADD', p .. ':item:' .. ARGV[3] .. ':tasks', tid)
redis.call('SADD', p .. ':i:' .. ARGV[5] .. ':tasks', tid)
return 1
"""
)

TASK_REMOVE = Script(
    _TASK_REMOVE_FN
    + """
remove_task(ARGV[1], ARGV[2])
return 1
"""
)

# --- instances --------------------------------------------------------------------

# ARGV[3] = '1' to reap only if the liveness key is gone; '0' to remove regardless.
REAP = Script(
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

# --- usage ------------------------------------------------------------------------

USAGE_MARK = Script(
    """
local p, sid, model = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. ':s:' .. sid) == 0 then return 0 end
redis.call('ZADD', p .. ':usage', ARGV[4], sid .. '|' .. model)
redis.call('SADD', p .. ':s:' .. sid .. ':usage', model)
return 1
"""
)

# ARGV[3] = '1' lists the expired marks without deleting them.
USAGE_EXPIRE = Script(
    """
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
)

# Broadcast models in use only if they differ from the last broadcast and nobody
# broadcast within the interval. Replies {'ok', model...} or nil.
USAGE_CLAIM = Script(
    """
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
)

# --- locks ------------------------------------------------------------------------

# Only the owner renews or releases a lock.
LOCK_RENEW = Script(
    """
local key = ARGV[1] .. ':lock:' .. ARGV[2]
if redis.call('GET', key) ~= ARGV[3] then return 0 end
return redis.call('PEXPIRE', key, ARGV[4])
"""
)

LOCK_RELEASE = Script(
    """
local key = ARGV[1] .. ':lock:' .. ARGV[2]
if redis.call('GET', key) ~= ARGV[3] then return 0 end
return redis.call('DEL', key)
"""
)
