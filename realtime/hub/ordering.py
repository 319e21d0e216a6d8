"""The hub's ordering of history rooms: each room's events reach this instance's
sockets in offset order, each once.

Senders on different instances take offsets from shared state and send their
batches on their own, so this instance can get a room's offset N+2 before N+1. It
keeps per room the last offset it handed out: a later one waits (at most
HISTORY_GAP_WAIT) for the ones before it, which normally arrive within
milliseconds; after that the missing ones are read from the room's window (their
sender died between storing and sending, or its send failed). A route added here
starts at the room's position then (`order_start`): every later offset is sent here,
since senders look routes up after storing (realtime.state, history_publish).
"""

import asyncio
import logging

from django.conf import settings

from realtime import metrics
from realtime.history import message_of

log = logging.getLogger(__name__)


class _Track:
    __slots__ = ("epoch", "last", "waiting", "timer")

    def __init__(self, epoch: str, last: int) -> None:
        self.epoch = epoch
        self.last = last
        self.waiting: dict[int, dict] = {}
        self.timer: asyncio.TimerHandle | None = None


class Ordering:
    """Per-room order of history events on one instance (a part of the Hub)."""

    def _ordering_init(self) -> None:
        self._tracks: dict[str, _Track] = {}

    def room_position(self, room: str) -> tuple[str, int] | None:
        """The (epoch, offset) of the last event of the room handed out here."""
        track = self._tracks.get(room)
        return None if track is None else (track.epoch, track.last)

    def order_start(self, room: str, epoch: str, offset: int) -> None:
        """A route to this instance was added at this position of the room: events
        after it will all come here."""
        track = self._tracks.get(room)
        if track is None or track.epoch != epoch:
            self._drop_track(room)
            self._tracks[room] = _Track(epoch, offset)
        elif offset > track.last:
            track.last = offset
            for stale in [o for o in track.waiting if o <= offset]:
                del track.waiting[stale]
            self._release(room, track)

    def order_stop(self, room: str) -> None:
        """The room is no longer routed here: forget its order."""
        self._drop_track(room)

    def _drop_track(self, room: str) -> None:
        track = self._tracks.pop(room, None)
        if track is not None and track.timer is not None:
            track.timer.cancel()

    def in_order(self, message: dict) -> None:
        """Hand a positioned room.emit message to this instance's sockets
        (`_deliver_ordered`, the Inbox's) in its room's order."""
        room = message["room"]
        offset = message["offset"]
        track = self._tracks.get(room)
        if track is None or track.epoch != message["epoch"]:
            # No start known (the route predates a restart of this order) or the
            # room's history began anew: start from this event.
            self._drop_track(room)
            track = self._tracks[room] = _Track(message["epoch"], offset - 1)
        if offset <= track.last or offset in track.waiting:
            metrics.HISTORY_DUPLICATES.inc()
            return
        if offset > track.last + 1:
            track.waiting[offset] = message
            self._arm(room, track)
            return
        track.last = offset
        self._deliver_ordered(message)
        self._release(room, track)

    def _release(self, room: str, track: _Track) -> None:
        # Hand out the waiting events that are next in line.
        while track.last + 1 in track.waiting:
            track.last += 1
            self._deliver_ordered(track.waiting.pop(track.last))
        if not track.waiting and track.timer is not None:
            track.timer.cancel()
            track.timer = None

    def _gap_timeout(self, room: str, track: _Track) -> None:
        track.timer = None
        if self._tracks.get(room) is track and track.waiting:
            self.spawn(self._fill_gap(room, track))

    async def _fill_gap(self, room: str, track: _Track) -> None:
        first_waiting = min(track.waiting)
        try:
            read = await self.state.history_read(
                room=room,
                epoch=track.epoch,
                offset=track.last,
                limit=settings.HISTORY_SIZE,
            )
        except Exception as exc:
            log.warning("history read for a gap in %s failed: %s", room, exc)
            read = None
        if self._tracks.get(room) is not track:
            return
        if read is not None and read.status == "ok":
            for offset, record in read.items:
                if offset >= first_waiting:
                    break
                if offset == track.last + 1:
                    track.last = offset
                    self._deliver_ordered(message_of(room, track.epoch, offset, record))
        if track.waiting and min(track.waiting) > track.last + 1:
            # Not in the window any more (or unreadable): skip ahead rather than
            # hold the room back; its sockets miss those events.
            lost = min(track.waiting) - track.last - 1
            metrics.HISTORY_GAPS_LOST.inc(lost)
            log.warning("%d events of %s could not be recovered", lost, room)
            track.last = min(track.waiting) - 1
        self._release(room, track)
        if track.waiting:
            self._arm(room, track)

    def _arm(self, room: str, track: _Track) -> None:
        # One gap timer per room at a time.
        if track.timer is None:
            track.timer = asyncio.get_running_loop().call_later(
                settings.HISTORY_GAP_WAIT, self._gap_timeout, room, track
            )
