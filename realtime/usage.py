"""Model usage: which models sessions are generating with, fleet-wide.

A client sends `usage {model}` about once a second while a model generates for it; the
mark lapses USAGE_TTL after the session's last one and goes at once with the session
(the state store removes a session's marks with the session). Each hub's usage loop
broadcasts `usage {"models"}` to the presence room when the set changes, at most once
per USAGE_INTERVAL across the fleet; the cleanup worker deletes lapsed marks.
"""

from django.conf import settings
from pydantic import Field

from realtime import emit
from realtime.events import Payload, on
from realtime.loops import every
from realtime.rooms import PRESENCE_ROOM
from realtime.state import get_state


class UsagePayload(Payload):
    """`model` marks it in use; without it the event only asks. Open WebUI clients
    also send `action` and `chat_id`, accepted and ignored."""

    model: str | None = Field(default=None, min_length=1, max_length=256)
    action: str | None = Field(default=None, max_length=64)
    chat_id: str | None = Field(default=None, max_length=64)


@on("usage", schema=UsagePayload)
async def usage(session, payload: UsagePayload) -> dict | None:
    """Mark the model as used by this session; without a model, answer the models."""
    if payload.model is not None:
        await usage_mark(sid=session.sid, model=payload.model)
        return None
    return {"models": await models_in_use()}


async def usage_mark(*, sid: str, model: str) -> bool:
    """Mark that a session uses a model for the next USAGE_TTL seconds."""
    return await get_state().usage_mark(model=model, sid=sid, ttl=settings.USAGE_TTL)


async def models_in_use() -> list[str]:
    """Models with a live mark on any instance, sorted."""
    return sorted(await get_state().usage_models())


async def model_sessions() -> dict[str, list[str]]:
    """Each model in use and the sessions using it (admin, inspect)."""
    models = await get_state().usage_models()
    return {model: sorted(sids) for model, sids in sorted(models.items())}


async def usage_tick() -> bool:
    """Broadcast the models in use if they changed (marks added, lapsed or gone
    with their session) and no instance did so within USAGE_INTERVAL."""
    models = await get_state().usage_claim(interval=settings.USAGE_INTERVAL)
    if models is None:
        return False
    await emit.room_emit(room=PRESENCE_ROOM, event="usage", data={"models": models})
    return True


async def usage_loop() -> None:
    """Try a broadcast twice per interval, so a change waits at most about one."""
    await every(settings.USAGE_INTERVAL / 2, usage_tick, "usage broadcast")
