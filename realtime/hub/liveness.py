"""The hub's liveness: this instance's key in shared state, renewed every
INSTANCE_TTL/3; peers whose key lapsed are reaped; and when our own key lapsed (a long
pause, or Redis restarted and lost everything) what this instance holds is written
again, so senders find its sessions and routes, and the hooks registered with
`events.on_reregister` write theirs (realtime.tasks: its running tasks). The first
renewal that succeeds after one failed re-registers too: a failover (Sentinel, or a
Redis Cluster promoting a replica) keeps the key but may have lost the writes the
old primary had not yet replicated, a session that joined or a route just added.

A failed renewal is tried again soon, not a third of a TTL later, and after an
outage (a failed renewal, or our own key found lapsed: a renewal can also hang
through a failover) this instance reaps nobody for one INSTANCE_TTL: peers whose
keys lapsed in the same outage renew in that time, rather than being reaped by
whichever instance reached the promoted replica first."""

import asyncio
import logging

from django.conf import settings

from realtime import events

log = logging.getLogger(__name__)

# After a failed renewal the next is tried this soon (seconds), doubling up to the
# usual TTL/3, so that renewing resumes as soon as Redis answers again.
RENEW_RETRY_FIRST = 0.25


class Liveness:
    """One instance's liveness (a part of the Hub)."""

    # Whether the last renewal failed (Redis unreachable, failing over).
    _renewal_failed = False
    # The loop time before which this instance reaps no peer (after an outage).
    _reap_after = 0.0

    async def _liveness_loop(self) -> None:
        # Every TTL/3: a lapsed peer is reaped at most TTL/3 after its key expires,
        # i.e. within 4/3 TTL of its death (the promise is 2 TTL).
        period = settings.INSTANCE_TTL / 3
        wait = period
        while True:
            await asyncio.sleep(wait)
            try:
                await self.tick()
                wait = period
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("liveness tick failed: %s", exc)
                wait = min(RENEW_RETRY_FIRST if wait == period else wait * 2, period)

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
        loop = asyncio.get_running_loop()
        if not alive or self._renewal_failed:
            await self._reregister()
            # An outage, or a renewal that hung through one (our key lapsed):
            # peers' keys may have lapsed in it too.
            self._reap_after = loop.time() + settings.INSTANCE_TTL
            self._renewal_failed = False
        if loop.time() < self._reap_after:
            return
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
