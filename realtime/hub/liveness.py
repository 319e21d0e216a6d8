"""The hub's liveness: this instance's key in shared state, renewed every
INSTANCE_TTL/3; peers whose key lapsed are reaped; and when our own key lapsed (a long
pause, or Redis restarted and lost everything) what this instance holds is written
again, so senders find its sessions and routes, and the hooks registered with
`events.on_reregister` write theirs (realtime.tasks: its running tasks). The first
renewal that succeeds after one failed re-registers too: a failover (Sentinel, or a
Redis Cluster promoting a replica) keeps the key but may have lost the writes the
old primary had not yet replicated, a session that joined or a route just added."""

import logging

from django.conf import settings

from realtime import events
from realtime.loops import every

log = logging.getLogger(__name__)


class Liveness:
    """One instance's liveness (a part of the Hub)."""

    # Whether the last renewal failed (Redis unreachable, failing over).
    _renewal_failed = False

    async def _liveness_loop(self) -> None:
        # Every TTL/3: a lapsed peer is reaped at most TTL/3 after its key expires,
        # i.e. within 4/3 TTL of its death (the promise is 2 TTL).
        await every(settings.INSTANCE_TTL / 3, self.tick, "liveness tick")

    async def tick(self) -> None:
        """Renew liveness (re-register if lapsed), reap dead peers."""
        try:
            alive = await self.state.instance_refresh(
                instance_id=self.instance_id,
                channel=self.channel,
                ttl=settings.INSTANCE_TTL,
            )
        except Exception:
            self._renewal_failed = True
            raise
        if not alive or self._renewal_failed:
            await self._reregister()
            self._renewal_failed = False
        for dead in await self.state.reap_dead_instances():
            log.warning(
                "reaped instance %s: %d sessions, %d users offline",
                dead.instance_id,
                dead.sessions,
                len(dead.went_offline),
            )

    async def _tick_quietly(self) -> None:
        try:
            await self.tick()
        except Exception as exc:
            log.debug("tick after a receive failure failed: %s", exc)

    async def _reregister(self) -> None:
        # Another instance may have reaped us: write what we hold again.
        for hook in events.reregister_hooks():
            await hook(self.state)
        if not self.sessions:
            return
        log.warning(
            "instance %s re-registering %d sessions",
            self.instance_id,
            len(self.sessions),
        )
        for session in list(self.sessions.values()):
            await self.state.session_add(
                sid=session.sid,
                user_id=session.user_id,
                instance_id=self.instance_id,
                channel=self.channel,
            )
            for room in list(session.rooms):
                await self.state.room_join(room=room, sid=session.sid)
        for room in self.routed_rooms():
            await self.state.route_add(
                room=room, channel=self.channel, instance_id=self.instance_id
            )
        # Redis may have lost the rooms' histories too: follow their new positions.
        await self._order_from_store(list(self.routed_rooms()))
