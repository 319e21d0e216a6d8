"""Server-to-client calls to one session, wherever it is connected.

The caller's hub sends `call.request` to the instance holding the session; that
instance sends the call frame, and the client's reply comes back as `call.reply` to
the caller's instance channel.
"""

import asyncio
import uuid
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from realtime.errors import DISCONNECTED, FORBIDDEN, TIMEOUT, CallError, EventError
from realtime.hub import get_hub
from realtime.state import get_state


async def session_call(
    *, user_id: int, sid: str, event: str, data: Any, timeout: float | None = None
) -> Any:
    """Call a session of `user_id` and return its reply.

    Raises EventError forbidden (the session is someone else's), disconnected (gone, or
    goes away before replying) or timeout; CallError if the client replied an error.
    """
    record = await get_state().session_get(sid=sid)
    if record is None:
        raise EventError(DISCONNECTED, "the session is not connected")
    if record.user_id != user_id:
        raise EventError(FORBIDDEN, "the session belongs to another user")
    hub = await get_hub()
    ref = uuid.uuid4().hex
    future = asyncio.get_running_loop().create_future()
    hub.pending_calls[ref] = future
    timeout = settings.CALL_TIMEOUT if timeout is None else timeout
    try:
        await get_channel_layer().send(
            record.channel,
            {
                "type": "call.request",
                "sid": sid,
                "event": event,
                "data": data,
                "ref": ref,
                "reply_to": hub.channel,
                "timeout": timeout,
            },
        )
        reply = await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise EventError(TIMEOUT, f"no reply to {event} in time") from None
    finally:
        hub.pending_calls.pop(ref, None)
    error = reply.get("error")
    if error is not None:
        if error.get("server"):  # set by the server, never by a client's reply
            raise EventError(DISCONNECTED, "the session disconnected before replying")
        raise CallError(error.get("code"), str(error.get("message", "")))
    return reply.get("data")
