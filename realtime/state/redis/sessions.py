"""Sessions in Redis: the record of every live socket and the sessions of each user.

p:s:{sid}            hash    user_id, instance, channel, connected_at, last_seen
p:u:{uid}            set     sessions of the user
p:i:{iid}:sessions   set     sessions held by the instance
"""

import time

from redis.asyncio.client import Pipeline

from realtime.state.base import RemovedSession, SessionRecord
from realtime.state.redis.client import RedisConnection, per_key
from realtime.state.redis.routes import queue_route
from realtime.state.redis.scripts import ADD, JOIN, REMOVE, TOUCH


def _session_record(sid: str, data: dict) -> SessionRecord:
    """A session's record from its hash."""
    return SessionRecord(
        sid=sid,
        user_id=int(data["user_id"]),
        instance_id=data["instance"],
        channel=data["channel"],
        connected_at=float(data["connected_at"]),
        last_seen=float(data.get("last_seen", 0)),
    )


class RedisSessions(RedisConnection):
    """The SessionStore of the Redis store."""

    async def session_add(
        self, *, sid: str, user_id: int, instance_id: str, channel: str
    ) -> bool:
        """Record a session; True when its user just came online."""
        added = await self.run(ADD, sid, user_id, instance_id, channel, time.time())
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

        # Run again whole if Redis lost the scripts: every step is idempotent but
        # the routes version bump, which is harmless.
        def fill(pipe: Pipeline) -> None:
            self.queue(pipe, ADD, sid, user_id, instance_id, channel, time.time())
            if route:
                queue_route(
                    pipe,
                    self.p,
                    room=room,
                    channel=channel,
                    instance_id=instance_id,
                    add=True,
                )
            self.queue(pipe, JOIN, room, sid)

        results = await self.run_pipeline(fill)
        return results[0] == 1

    async def session_remove(self, *, sid: str) -> RemovedSession | None:
        """Forget a session, its room memberships and its usage marks."""
        result = await self.run(REMOVE, sid)
        if not result:
            return None
        uid, offline, rooms = result
        return RemovedSession(sid, int(uid), offline == 1, sorted(rooms))

    async def session_get(self, *, sid: str) -> SessionRecord | None:
        """The record of one session."""
        data = await self.client().hgetall(f"{self.p}:s:{sid}")
        return _session_record(sid, data) if data else None

    async def session_touch(self, *, sid: str) -> None:
        """Record that a known session was seen now."""
        await self.run(TOUCH, sid, time.time())

    async def session_list(self) -> list[SessionRecord]:
        """Every session of every registered instance, oldest first."""
        client = self.client()
        instances = await client.hkeys(f"{self.p}:instances")
        keys = [f"{self.p}:i:{iid}:sessions" for iid in instances]
        sids = sorted(
            {sid for held in await per_key(client, "smembers", keys) for sid in held}
        )
        rows = await per_key(client, "hgetall", [f"{self.p}:s:{sid}" for sid in sids])
        records = [
            _session_record(sid, data)
            for sid, data in zip(sids, rows, strict=True)
            if data
        ]
        return sorted(records, key=lambda r: r.connected_at)

    async def user_sessions(self, *, user_id: int) -> set[str]:
        """The live sessions of a user, on every instance."""
        return set(await self.client().smembers(f"{self.p}:u:{user_id}"))
