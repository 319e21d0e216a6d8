"""Socket events of channels: join-channels, events:channel (typing, last_read_at), and
the rooms user-join enters. Both dialects send the same two events; Open WebUI's
shape (realtime.dialects.OPENWEBUI) also carries identity fields, ignored."""

from typing import Any, Literal

from channels.db import database_sync_to_async
from django.conf import settings

from channels_app import selectors, services, typists
from channels_app.envelopes import EVENT, channel_frames
from channels_app.models import Channel, ChannelMessage
from channels_app.rooms import channel_room
from realtime import events
from realtime.dialects import OPENWEBUI
from realtime.emit import room_emit
from realtime.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, RATE_LIMITED, EventError
from realtime.events import Payload, on
from realtime.hub import get_hub
from realtime.session import per_session

# A session relays at most one typing event per channel (or thread) this often
# (seconds); one sooner only keeps the typist's indicator alive.
TYPING_INTERVAL = 0.5

# Places one socket may be typing in at once: a person types in one or two; the
# bound keeps a socket from holding a timer (and a read) per message of a channel.
MAX_TYPING_SPELLS = 16

# Per socket: (channel id, thread id or None) -> its typing spell.
spells = per_session(dict)


@events.user_rooms
async def channel_rooms(user_id: int) -> list[str]:
    """Every channel room of the user (entered by user-join)."""
    ids = await database_sync_to_async(selectors.channel_ids_for)(user_id=user_id)
    return [channel_room(cid) for cid in ids]


class JoinChannels(Payload):
    """Open WebUI sends its token again as `auth`; identity is the session's."""

    auth: dict[str, Any] | None = None


@on("join-channels", schema=JoinChannels)
async def join_channels(session, payload: JoinChannels) -> dict:
    """Enter the room of every channel of the user."""
    hub = await get_hub()
    rooms = await channel_rooms(session.user_id)
    for room in rooms:
        await hub.join(session, room)
    return {"channel_ids": sorted(room.split(":", 1)[1] for room in rooms)}


class ChannelEventData(Payload):
    type: Literal["typing", "last_read_at"]
    data: dict[str, Any] | None = None


class ChannelEvent(Payload):
    """`message_id`: the thread (its root message) the typing is in, or null.
    `user` is accepted from older clients and ignored."""

    channel_id: str
    data: ChannelEventData
    message_id: str | int | None = None
    user: Any = None


class TypingFlag(Payload):
    typing: bool = True


class OpenWebUIChannelEventData(Payload):
    type: Literal["typing", "last_read_at"]
    data: TypingFlag | None = None


class OpenWebUIChannelEvent(Payload):
    """Open WebUI's frame. Identity fields, if a client sends any, are ignored."""

    channel_id: str
    data: OpenWebUIChannelEventData
    message_id: str | int | None = None
    user: Any = None
    user_id: Any = None
    user_name: Any = None
    user_color: Any = None
    socket_id: Any = None
    auth: Any = None


@on(
    "events:channel",
    schema=ChannelEvent,
    dialects={OPENWEBUI: OpenWebUIChannelEvent},
)
async def channel_event(session, payload) -> dict | None:
    """Typing indicators (relayed to the room, timed out by the server) and the
    sender's own read position."""
    room = channel_room(payload.channel_id)
    if payload.data.type == "last_read_at":
        at = await database_sync_to_async(services.channel_mark_read)(
            user_id=session.user_id, channel_id=payload.channel_id
        )
        return {"last_read_at": at.isoformat()}
    if room not in session.rooms:
        raise EventError(FORBIDDEN, "not in this channel's room (send join-channels)")
    thread_id = _thread_id(payload.message_id)
    if _typing_flag(payload):
        await _typing_on(session, payload.channel_id, thread_id)
    else:
        await _typing_off(session, payload.channel_id, thread_id)
    return None


def _typing_flag(payload) -> bool:
    flag = payload.data.data
    if isinstance(flag, TypingFlag):
        return flag.typing
    return bool((flag or {}).get("typing", True))


def _thread_id(message_id: str | int | None) -> int | None:
    if message_id is None:
        return None
    if isinstance(message_id, str) and message_id.isascii() and message_id.isdigit():
        message_id = int(message_id)
    if isinstance(message_id, int) and 0 < message_id < 2**63:
        return message_id
    raise EventError(BAD_REQUEST, "events:channel: message_id must be a message id")


async def _typing_on(session, channel_id: str, thread_id: int | None) -> None:
    key = (channel_id, thread_id)
    spell = spells(session).get(key)
    if spell is None:
        if len(spells(session)) >= MAX_TYPING_SPELLS:
            raise EventError(RATE_LIMITED, "typing in too many places at once")
        channel = await _typing_place(channel_id, thread_id)
        spell = spells(session)[key] = typists.Spell(channel=channel)
    spell.arm(settings.CHANNEL_TYPING_TIMEOUT, lambda: _expire(session, key))
    if not spell.relay_due(TYPING_INTERVAL):
        if session.protocol == OPENWEBUI:
            return  # Open WebUI refreshes as the user types: no error for that
        raise EventError(RATE_LIMITED, "typing is relayed at most every 0.5 s")
    await _typing_emit(session, spell.channel, thread_id, True)


async def _typing_off(session, channel_id: str, thread_id: int | None) -> None:
    spell = spells(session).pop((channel_id, thread_id), None)
    if spell is not None:
        spell.disarm()
        await _typing_emit(session, spell.channel, thread_id, False)


def _expire(session, key) -> None:
    spell = spells(session).pop(key, None)
    if spell is not None and not session.closed:
        typists.spawn(_typing_emit(session, spell.channel, key[1], False))


@events.on_disconnect
async def typing_stop_on_disconnect(session) -> None:
    """A typist who leaves stops typing at once, for everyone."""
    held = spells.made.pop(session, None) or {}
    for (_, thread_id), spell in held.items():
        spell.disarm()
        await _typing_emit(session, spell.channel, thread_id, False)


@database_sync_to_async
def _typing_place(channel_id: str, thread_id: int | None) -> Channel:
    # Read once per typing spell: the envelope's channel, and the thread it is in.
    channel = Channel.objects.filter(id=channel_id).first()
    if channel is None:
        raise EventError(NOT_FOUND, "no such channel")
    if thread_id is not None:
        found = ChannelMessage.objects.filter(
            id=thread_id, channel_id=channel_id, deleted_at__isnull=True
        ).exists()
        if not found:
            raise EventError(NOT_FOUND, "no such message")
    return channel


async def _typing_emit(session, channel: Channel, thread_id, typing: bool) -> None:
    plain, variants = channel_frames(
        kind="typing",
        channel=channel,
        user=session.user,
        message_id=thread_id,
        data={"typing": typing},
        openwebui_data={"typing": typing},
    )
    await room_emit(
        room=channel_room(channel.id),
        event=EVENT,
        data=plain,
        variants=variants,
        skip_sid=session.sid,
        volatile=True,  # a typing state is stale a moment later: never replayed
    )
