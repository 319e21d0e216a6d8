"""POSTs of frames to an HTTP session, wherever they land: taken here if this process
holds the session's stream, else forwarded through the layer to the instance that
does, which answers whether it took them (docs/protocol.md §10)."""

import asyncio
import uuid

from django.conf import settings

from realtime import metrics
from realtime.http_transport import routes
from realtime.http_transport.asgi_http import HttpError
from realtime.http_transport.stream import ACCEPTED, local_stream
from realtime.hub import get_hub
from realtime.layer import HttpFrames, HttpTaken, on_layer
from realtime.loops import per_loop

# The forwarded POSTs this loop awaits an answer to: ref -> future.
_pending = per_loop(dict)

MISSING = 404
# The stream's instance did not answer in time: the client retries the same seq
# (harmless: a POST is never taken twice); if that instance died, its streams ended
# and their clients reconnect anyway.
UNANSWERED = 503


def post_headers(scope_header, sid: str) -> tuple[str, str, int]:
    """(secret, channel, seq) of a POST; HttpError when they are missing or wrong."""
    key = scope_header(b"x-realtime-key")
    if not key:
        raise HttpError(400, "X-Realtime-Key is missing")
    route = routes.route_of(sid=sid, key=key)
    if route is None:
        raise HttpError(403, "the key is not this session's")
    seq_text = scope_header(b"x-realtime-seq") or ""
    if not seq_text.isdigit() or not 0 < int(seq_text) <= 2**53 - 1:
        raise HttpError(400, "X-Realtime-Seq must be an integer from 1")
    return route[0], route[1], int(seq_text)


async def frames_deliver(
    *, sid: str, secret: str, channel: str, seq: int, frames: list[str]
) -> int:
    """Hand a POST's frames to session `sid`; the HTTP status of the answer."""
    hub = await get_hub()
    if channel == hub.channel:
        metrics.HTTP_POSTS.labels("local").inc()
        stream = local_stream(sid)
        return MISSING if stream is None else stream.take(secret, seq, frames)
    metrics.HTTP_POSTS.labels("forwarded").inc()
    ref = uuid.uuid4().hex
    future = asyncio.get_running_loop().create_future()
    pending = _pending()
    pending[ref] = future
    message: HttpFrames = {
        "type": "http.frames",
        "sid": sid,
        "secret": secret,
        "seq": seq,
        "frames": frames,
        "ref": ref,
        "reply_to": hub.channel,
    }
    try:
        await hub.layer.send(channel, message)
        return await asyncio.wait_for(future, settings.HTTP_FORWARD_TIMEOUT)
    except TimeoutError:
        return UNANSWERED
    finally:
        pending.pop(ref, None)


@on_layer("http.frames")
def http_frames(hub, message: HttpFrames) -> None:
    """Take a forwarded POST for a stream of this process, and say how it went."""
    stream = local_stream(message["sid"])
    status = (
        MISSING
        if stream is None
        else stream.take(message["secret"], message["seq"], message["frames"])
    )
    answer: HttpTaken = {"type": "http.taken", "ref": message["ref"], "status": status}
    hub.spawn(hub.layer.send(message["reply_to"], answer))


@on_layer("http.taken")
def http_taken(hub, message: HttpTaken) -> None:
    """The answer to a POST this process forwarded."""
    future = _pending().pop(message["ref"], None)
    if future is not None and not future.done():
        future.set_result(message["status"])


__all__ = ["ACCEPTED", "MISSING", "frames_deliver", "post_headers"]
