"""Room history in Redis: positions and a bounded window of events per room.

p:hm:{room}   hash  e: the epoch, o: the last offset; kept HISTORY_META_TTL
p:h:{room}    list  "offset|ms|record", oldest first, at most HISTORY_SIZE, the key
                    kept HISTORY_TTL after the last append

A list rather than a stream: the window is read by offset arithmetic (the last
`top - offset` items), appends are RPUSH + LTRIM, and a record is stored once as one
string. A room whose meta hash is gone (a Redis restart, a failover to an empty
replica, an idle day) gets a new random epoch, so no client mistakes a new history
for the one it saw.
"""

import secrets

from django.conf import settings

from realtime.state.base import HistoryRead
from realtime.state.redis.client import RedisConnection, ms
from realtime.state.redis.scripts import Script

EPOCH_BYTES = 6

# The epoch of a room, made from ARGV's fresh one when it has none (shared by both
# scripts, prepended to each).
_EPOCH = """
local function epoch_of(meta, list, fresh)
  local e = redis.call('HGET', meta, 'e')
  if not e then
    e = fresh
    redis.call('HSET', meta, 'e', e, 'o', 0)
    redis.call('DEL', list)
  end
  return e
end
"""

# ARGV: prefix, size, ttl ms, meta ttl ms, fresh epoch, then per room: the room and
# its records joined by newlines (a record is JSON: it has none of its own). Replies
# one string, "epoch first-offset" per room joined by ",". One argument and one reply
# value per room rather than per event: redis-py's parser costs about 7 us per value,
# which made the replies the largest cost of a busy emitter.
APPEND = Script(
    _EPOCH
    + """
local p, size, ttl, mttl, fresh = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local stamp = '|' .. (t[1] * 1000 + math.floor(t[2] / 1000)) .. '|'
local out = {}
for i = 6, #ARGV, 2 do
  local meta, list = p .. ':hm:' .. ARGV[i], p .. ':h:' .. ARGV[i]
  local e = epoch_of(meta, list, fresh)
  local records = {}
  for record in string.gmatch(ARGV[i + 1], '[^\\n]+') do
    records[#records + 1] = record
  end
  local n = #records
  local first = redis.call('HINCRBY', meta, 'o', n) - n + 1
  for k = 1, n do records[k] = (first + k - 1) .. stamp .. records[k] end
  local length = 0
  for k = 1, n, APPEND_CHUNK do
    local last = math.min(k + APPEND_CHUNK - 1, n)
    length = redis.call('RPUSH', list, unpack(records, k, last))
  end
  if length > size then redis.call('LTRIM', list, -size, -1) end
  redis.call('PEXPIRE', list, ttl)
  redis.call('PEXPIRE', meta, mttl)
  out[#out + 1] = e .. ' ' .. first
end
return table.concat(out, ',')
""".replace("APPEND_CHUNK", "1000")
)

# ARGV: prefix, ttl ms, limit, fresh epoch, room, epoch, offset.
# Replies {status, epoch, top, item...}.
READ = Script(
    _EPOCH
    + """
local p, ttl, limit, fresh = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local meta, list = p .. ':hm:' .. ARGV[5], p .. ':h:' .. ARGV[5]
local e = epoch_of(meta, list, fresh)
local top = tonumber(redis.call('HGET', meta, 'o') or '0')
local offset = tonumber(ARGV[7])
if e ~= ARGV[6] then return {'epoch', e, top} end
if offset > top then return {'ahead', e, top} end
local need = top - offset
if need == 0 then return {'ok', e, top} end
local have = redis.call('LLEN', list)
if have == 0 then return {'expired', e, top} end
if need > have or need > limit then return {'trimmed', e, top} end
local items = redis.call('LRANGE', list, -need, -1)
local first = items[1]
local sep = string.find(first, '|', 1, true)
local stop = string.find(first, '|', sep + 1, true)
local at = tonumber(string.sub(first, sep + 1, stop - 1))
local t = redis.call('TIME')
if at < t[1] * 1000 + math.floor(t[2] / 1000) - ttl then return {'expired', e, top} end
local out = {'ok', e, top}
for _, item in ipairs(items) do out[#out + 1] = item end
return out
"""
)

# ARGV: prefix, fresh epoch, rooms. Replies epoch, offset per room.
TOP = Script(
    _EPOCH
    + """
local p, fresh, out = ARGV[1], ARGV[2], {}
for i = 3, #ARGV do
  local meta = p .. ':hm:' .. ARGV[i]
  out[#out + 1] = epoch_of(meta, p .. ':h:' .. ARGV[i], fresh)
  out[#out + 1] = tonumber(redis.call('HGET', meta, 'o') or '0')
end
return out
"""
)


def _fresh() -> str:
    return secrets.token_urlsafe(EPOCH_BYTES)


def _pairs(flat: list) -> list[tuple[str, int]]:
    return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]


class RedisHistory(RedisConnection):
    """The HistoryStore of the Redis store. Its routes lookup is the RouteStore's
    (RedisRoutes.routes_after), so an append and the routes it is sent by are read
    in one round trip, the appends first."""

    async def history_publish(
        self, *, appends: list[tuple[str, str]], rooms: list[str]
    ) -> tuple[list[tuple[str, int]], dict[str, set[str]] | None]:
        """Append each (room, record); then the routes (None: being rebuilt)."""
        if not appends:
            return [], await self.routes_for(rooms=rooms)
        args: list = [
            settings.HISTORY_SIZE,
            ms(settings.HISTORY_TTL),
            ms(settings.HISTORY_META_TTL),
            _fresh(),
        ]
        by_room: dict[str, list[str]] = {}
        for room, record in appends:
            by_room.setdefault(room, []).append(record)
        for room, records in by_room.items():
            args += (room, "\n".join(records))
        reply, routes = await self.routes_after(
            rooms=rooms, before=lambda pipe: self.queue(pipe, APPEND, *args)
        )
        # Each room's records got consecutive offsets from its first, in order.
        next_offset: dict[str, list] = {}
        for room, placed in zip(by_room, reply.split(","), strict=True):
            epoch, first = placed.split(" ")
            next_offset[room] = [epoch, int(first)]
        positions = []
        for room, _ in appends:
            at = next_offset[room]
            positions.append((at[0], at[1]))
            at[1] += 1
        return positions, routes

    async def history_read(
        self, *, room: str, epoch: str, offset: int, limit: int
    ) -> HistoryRead:
        """The records after (epoch, offset), if the window holds them all."""
        status, epoch_now, top, *items = await self.run(
            READ, ms(settings.HISTORY_TTL), limit, _fresh(), room, epoch, offset
        )
        parsed = []
        for item in items:
            head, _, rest = item.partition("|")
            parsed.append((int(head), rest.partition("|")[2]))
        return HistoryRead(status, epoch_now, int(top), parsed)

    async def history_top(self, *, rooms: list[str]) -> dict[str, tuple[str, int]]:
        """Each room's position now."""
        if not rooms:
            return {}
        flat = await self.run(TOP, _fresh(), *rooms)
        return dict(zip(rooms, _pairs(flat), strict=True))
