"""The layer's Lua scripts, each touching one key, run by SHA.

A promoted replica or a restarted node may not have them: on NOSCRIPT every script
is loaded on every primary and the call runs once more.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError


class Script:
    """A Lua script and its SHA1."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        SCRIPTS.append(self)


SCRIPTS: list[Script] = []

# KEYS[1] channel list; ARGV: element, capacity, expiry ms, now. Returns 1 if queued,
# 0 if full. Expired messages still count until a reader drops them, so a full
# channel first drops its expired head (oldest first, as lists keep send order).
SEND = Script(
    """
local length = redis.call('LLEN', KEYS[1])
local capacity = tonumber(ARGV[2])
if length >= capacity then
  local now = tonumber(ARGV[4])
  while length > 0 do
    local head = redis.call('LINDEX', KEYS[1], 0)
    if struct.unpack('>d', head) >= now then break end
    redis.call('LPOP', KEYS[1])
    length = length - 1
  end
  if length >= capacity then return 0 end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS[1] group set; ARGV: channel, now, group expiry seconds.
GROUP_ADD = Script(
    """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS[1] group set; ARGV: oldest join time still a member. Returns the members.
GROUP_MEMBERS = Script(
    """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)


async def load_all(client: RedisCluster) -> None:
    """Load every script on every primary (SCRIPT LOAD goes to all of them)."""
    for script in SCRIPTS:
        await client.script_load(script.source)


async def run(client: RedisCluster, script: Script, key: bytes, *args: Any) -> Any:
    """Run one script on the node of `key`: one round trip while it has it."""
    return await retry_unloaded(
        client, lambda: client.evalsha(script.sha, 1, key, *args)
    )


async def retry_unloaded(
    client: RedisCluster, call: Callable[[], Awaitable[Any]]
) -> Any:
    """Run `call`; if a node lacked a script, load them all and run it once more."""
    try:
        return await call()
    except NoScriptError:
        await load_all(client)
        return await call()
