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
from realtime.layer import CallReply, CallRequest, on_layer
from realtime.loops import per_loop
from realtime.state import get_state

# The calls this loop made and awaits a reply to: ref -> future.
_pending = per_loop(dict)


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
    pending = _pending()
    pending[ref] = future
    timeout = settings.CALL_TIMEOUT if timeout is None else timeout
    request: CallRequest = {
        "type": "call.request",
        "sid": sid,
        "event": event,
        "data": data,
        "ref": ref,
        "reply_to": hub.channel,
        "timeout": timeout,
    }
    try:
        await get_channel_layer().send(record.channel, request)
        reply = await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise EventError(TIMEOUT, f"no reply to {event} in time") from None
    finally:
        pending.pop(ref, None)
    error = reply.get("error")
    if error is not None:
        if error.get("server"):  # set by the server, never by a client's reply
            raise EventError(DISCONNECTED, "the session disconnected before replying")
        raise CallError(error.get("code"), str(error.get("message", "")))
    return reply.get("data")


@on_layer("call.request")
def call_request(hub, message: CallRequest) -> None:
    """Send the call frame to the session here; its reply (or a server error if the
    session is gone or goes) travels back to the caller's instance channel."""
    ref, reply_to = message["ref"], message["reply_to"]
    loop = asyncio.get_running_loop()

    def on_reply(data, error) -> None:
        reply: CallReply = {
            "type": "call.reply",
            "ref": ref,
            "data": data,
            "error": error,
        }
        loop.create_task(hub.layer.send(reply_to, reply))

    session = hub.sessions.get(message["sid"])
    if session is None:
        on_reply(None, {"code": "disconnected", "server": True})
    else:
        session.send_call(
            message["event"], message["data"], on_reply, expire=message["timeout"]
        )


@on_layer("call.reply")
def call_reply(hub, message: CallReply) -> None:
    """Hand a reply to the call of this loop that waits for it."""
    future = _pending().pop(message["ref"], None)
    if future is not None and not future.done():
        future.set_result(message)
