"""Routes in Redis: which instance channels each room's events go to, cached here.

p:rt:{room}          set     instance channels the room's events go to
p:i:{iid}:routes     set     rooms routed to the instance
p:routes:version     counter bumped by every route change (and by reaping)
p:routes:incarnation random, set when missing by route changes: the counter's era
"""

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import Pipeline

from realtime.state.base import RoutesRebuilding
from realtime.state.redis.client import RedisConnection, per_key

# Rooms whose routes a process keeps in memory (cleared when it grows past this).
ROUTE_CACHE_MAX = 50_000
# INSTANCE_TTL's default, which get_state passes: instances re-register their routes
# within one liveness tick of noticing that Redis lost them.
ROUTES_REBUILD_WAIT = 15.0


def queue_route(
    pipe: Pipeline, prefix: str, *, room: str, channel: str, instance_id: str, add: bool
) -> None:
    """Queue adding (or removing) one route, and the version bump of every change."""
    change = pipe.sadd if add else pipe.srem
    change(f"{prefix}:rt:{room}", channel)
    change(f"{prefix}:i:{instance_id}:routes", room)
    pipe.incr(f"{prefix}:routes:version")
    # The counter starts again from nothing when Redis loses its data, so it can
    # come back to the very value a process cached: the incarnation, made anew
    # then, tells the two apart.
    pipe.set(f"{prefix}:routes:incarnation", secrets.token_hex(8), nx=True)


class RedisRoutes(RedisConnection):
    """The RouteStore of the Redis store, with this process's route cache."""

    def __init__(self, *, routes_rebuild_wait: float, **connection) -> None:
        super().__init__(**connection)
        self.routes_rebuild_wait = routes_rebuild_wait
        self._route_cache: dict[str, set[str]] = {}
        self._route_version: str | None = None
        self._routes_lost_at: float | None = None

    async def route_add(self, *, room: str, channel: str, instance_id: str) -> None:
        """Send the room's events to this instance channel."""
        await self._route_change(room, channel, instance_id, add=True)

    async def route_remove(self, *, room: str, channel: str, instance_id: str) -> None:
        """Stop sending the room's events to this instance channel."""
        await self._route_change(room, channel, instance_id, add=False)

    async def _route_change(
        self, room: str, channel: str, instance_id: str, *, add: bool
    ) -> None:
        pipe = self.atomic_pipeline()
        queue_route(
            pipe, self.p, room=room, channel=channel, instance_id=instance_id, add=add
        )
        await pipe.execute()

    async def routes_for(self, *, rooms: list[str]) -> dict[str, set[str]]:
        """The instance channels of each room.

        Routes change only when an instance gets its first or loses its last member
        of a room, and every change bumps one version key; so this process caches
        routes and, while the version holds, asks Redis for nothing but the version
        and the rooms it has not seen (one round trip)."""
        if not rooms:
            return {}
        _, routes = await self.routes_after(rooms=rooms)
        if routes is None:
            raise RoutesRebuilding("routes are being rebuilt after Redis lost them")
        return routes

    async def routes_after(
        self, *, rooms: list[str], before: Callable[[Pipeline], None] | None = None
    ) -> tuple[Any, dict[str, set[str]] | None]:
        """routes_for, with the command `before` queues run first in the same round
        trip (history appends: a route added after them is seen); its reply, and
        the routes (None while they are being rebuilt: the reply still counts)."""
        cache = self._route_cache
        missing = [room for room in rooms if room not in cache]

        def fill(pipe: Pipeline) -> None:
            if before is not None:
                before(pipe)
            pipe.get(f"{self.p}:routes:version")
            pipe.get(f"{self.p}:routes:incarnation")
            for room in missing:
                pipe.smembers(f"{self.p}:rt:{room}")

        replies = await self.run_pipeline(fill)
        first = replies.pop(0) if before is not None else None
        count, incarnation, *found = replies
        version = None if count is None else f"{incarnation}:{count}"
        if version is None and self._route_version is not None:
            # The routes version vanished: Redis lost its data (a restart, a failover
            # to an empty replica). Instances re-register their routes as soon as they
            # notice; until then "no route" does not mean "nobody to deliver to".
            loop = asyncio.get_running_loop()
            if self._routes_lost_at is None:
                self._routes_lost_at = loop.time()
            if loop.time() - self._routes_lost_at < self.routes_rebuild_wait:
                return first, None
        self._routes_lost_at = None
        found_map = dict(zip(missing, map(set, found), strict=True))
        if version != self._route_version:
            # Something moved: drop everything cached and look the rest up as well.
            cache.clear()
            self._route_version = version
            rest = [room for room in rooms if room not in found_map]
            if rest:
                keys = [f"{self.p}:rt:{room}" for room in rest]
                channels = await per_key(self.client(), "smembers", keys)
                found_map.update(zip(rest, map(set, channels), strict=True))
        if len(cache) > ROUTE_CACHE_MAX:
            cache.clear()
        cache.update(found_map)
        routes = {room: cache.get(room) or found_map.get(room, set()) for room in rooms}
        return first, routes
