"""Room history in Redis: positions and a bounded window of events per room.

hp:hm:{room}  hash  e: the epoch, o: the last offset; kept HISTORY_META_TTL
hp:h:{room}   list  "offset|ms|record", oldest first, at most HISTORY_SIZE, the key
                    kept HISTORY_TTL after the last append

The room is the keys' hash tag (`room_key`), so a room's two keys share a slot and
the rooms spread over a cluster's primaries. The scripts take their keys as KEYS;
on a cluster, one script runs per slot of the rooms of a call.

A list rather than a stream: the window is read by offset arithmetic (the last
`top - offset` items), appends are RPUSH + LTRIM, and a record is stored once as one
string. A room whose meta hash is gone (a Redis restart, a failover to an empty
replica, an idle day) gets a new random epoch, so no client mistakes a new history
for the one it saw.
"""

import hashlib
import secrets

from django.conf import settings

import realtime.state.redis.scripts as scripts
from realtime.state.base import HistoryRead
from realtime.state.redis.client import UNAVAILABLE, RedisConnection, ms
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

# KEYS: per room its meta and list keys. ARGV: size, ttl ms, meta ttl ms, fresh
# epoch, then per room its records joined by newlines (a record is JSON: it has none
# of its own). Replies one string, "epoch first-offset" per room joined by ",". One
# argument and one reply value per room rather than per event: redis-py's parser
# costs about 7 us per value, which made the replies the largest cost of a busy
# emitter.
APPEND = Script(
    _EPOCH
    + """
local size, ttl, mttl, fresh = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TIME')
local stamp = '|' .. (t[1] * 1000 + math.floor(t[2] / 1000)) .. '|'
local out = {}
for i = 1, #KEYS, 2 do
  local meta, list = KEYS[i], KEYS[i + 1]
  local e = epoch_of(meta, list, fresh)
  local records = {}
  for record in string.gmatch(ARGV[4 + (i + 1) / 2], '[^\\n]+') do
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

# KEYS: the room's meta and list keys. ARGV: ttl ms, limit, fresh epoch, epoch,
# offset. Replies {status, epoch, top, item...}.
READ = Script(
    _EPOCH
    + """
local ttl, limit, fresh = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local meta, list = KEYS[1], KEYS[2]
local e = epoch_of(meta, list, fresh)
local top = tonumber(redis.call('HGET', meta, 'o') or '0')
local offset = tonumber(ARGV[5])
if e ~= ARGV[4] then return {'epoch', e, top} end
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

# KEYS: per room its meta and list keys. ARGV: fresh epoch. Replies epoch, offset
# per room.
TOP = Script(
    _EPOCH
    + """
local fresh, out = ARGV[1], {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = epoch_of(KEYS[i], KEYS[i + 1], fresh)
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], 'o') or '0')
end
return out
"""
)


def _fresh() -> str:
    return secrets.token_urlsafe(EPOCH_BYTES)


def _pairs(flat: list) -> list[tuple[str, int]]:
    return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]


def room_tag(room: str) -> str:
    """The hash tag of a room's history keys: the room itself; for a room with a
    "}" (which would end the tag early), a digest of it, then the room."""
    if room and "}" not in room:
        return "{" + room + "}"
    return "{~" + hashlib.sha1(room.encode()).hexdigest()[:16] + "}" + room


class RedisHistory(RedisConnection):
    """The HistoryStore of the Redis store. Its routes lookup is the RouteStore's
    (RedisRoutes.routes_after): on one Redis an append and the routes it is sent by
    are read in one round trip, the appends first; on a cluster they live on
    different nodes, so the routes are read once the appends are done (a route
    added after them is seen either way)."""

    def _keys(self, rooms: list[str]) -> list[str]:
        out = []
        for room in rooms:
            tag = room_tag(room)
            out += (f"{self.hp}:hm:{tag}", f"{self.hp}:h:{tag}")
        return out

    def _groups(self, rooms: list[str]) -> list[list[str]]:
        """The rooms grouped by the slot of their keys (one script per group)."""
        tagged = {room_tag(room): room for room in rooms}
        return [[tagged[t] for t in group] for group in self.by_slot(list(tagged))]

    async def history_publish(
        self, *, appends: list[tuple[str, str]], rooms: list[str]
    ) -> tuple[list[tuple[str, int]], dict[str, set[str]] | None]:
        """Append each (room, record); then the routes (None: being rebuilt)."""
        if not appends:
            return [], await self.routes_for(rooms=rooms)
        head = [
            settings.HISTORY_SIZE,
            ms(settings.HISTORY_TTL),
            ms(settings.HISTORY_META_TTL),
            _fresh(),
        ]
        by_room: dict[str, list[str]] = {}
        for room, record in appends:
            by_room.setdefault(room, []).append(record)
        groups = self._groups(list(by_room))

        def queue_appends(pipe) -> None:
            for group in groups:
                records = ["\n".join(by_room[room]) for room in group]
                scripts.queue(pipe, APPEND, self._keys(group), *head, *records)

        if self.cluster:
            replies = await self.run_pipeline(queue_appends)
            try:
                # routes_after, not routes_for: None while the routes are being
                # rebuilt, rather than a raise that would lose the positions too.
                _, routes = await self.routes_after(rooms=rooms)
            except UNAVAILABLE:
                # The records are stored: their positions must reach the outbox
                # (None makes it retry the sends alone), or its retry would store
                # them again under new offsets, and clients would see them twice.
                routes = None
        else:
            reply, routes = await self.routes_after(rooms=rooms, before=queue_appends)
            replies = [reply]
        # Each room's records got consecutive offsets from its first, in order.
        next_offset: dict[str, list] = {}
        for group, reply in zip(groups, replies, strict=True):
            for room, placed in zip(group, reply.split(","), strict=True):
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
        status, epoch_now, top, *items = await scripts.run(
            self.client(),
            READ,
            self._keys([room]),
            ms(settings.HISTORY_TTL),
            limit,
            _fresh(),
            epoch,
            offset,
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
        groups = self._groups(rooms)
        fresh = _fresh()

        def fill(pipe) -> None:
            for group in groups:
                scripts.queue(pipe, TOP, self._keys(group), fresh)

        replies = await self.run_pipeline(fill)
        out = {}
        for group, flat in zip(groups, replies, strict=True):
            out.update(zip(group, _pairs(flat), strict=True))
        return out
