"""The HTTP transport's two endpoints, and their URL patterns (realtime.asgi)."""

from django.conf import settings
from django.urls import path

from realtime.http_transport import post
from realtime.http_transport.asgi_http import (
    ClientGone,
    HttpError,
    check_request,
    header,
    read_frames,
    respond,
)
from realtime.http_transport.stream import Stream


async def open_stream(scope, receive, send) -> None:
    """POST /ws/http/: open an HTTP session; its frames follow in the response."""
    limit = settings.HTTP_POST_MAX_BYTES
    try:
        check_request(scope, limit=limit)
        frames = await read_frames(
            scope, receive, limit=limit, max_frames=settings.HTTP_POST_MAX_FRAMES
        )
    except HttpError as exc:
        await respond(send, exc.status, exc.message)
        return
    except ClientGone:
        return
    await Stream(send).run(frames, receive)


async def post_frames(scope, receive, send) -> None:
    """POST /ws/http/<sid>/: frames for an open session, taken in order."""
    sid = scope["url_route"]["kwargs"]["sid"]
    limit = settings.HTTP_POST_MAX_BYTES
    try:
        check_request(scope, limit=limit)
        secret, channel, seq = post.post_headers(lambda name: header(scope, name), sid)
        frames = await read_frames(
            scope, receive, limit=limit, max_frames=settings.HTTP_POST_MAX_FRAMES
        )
        if not frames:
            raise HttpError(400, "no frames in the body")
        status = await post.frames_deliver(
            sid=sid, secret=secret, channel=channel, seq=seq, frames=frames
        )
    except HttpError as exc:
        await respond(send, exc.status, exc.message)
        return
    except ClientGone:
        return
    await respond(send, status, _MESSAGES.get(status, ""))


_MESSAGES = {
    403: "the key is not this session's",
    404: "no such session: open a new stream",
    409: "out of order: send the POST before this one first",
    429: "too many frames waiting for this session",
    503: "the session's instance did not answer in time: retry",
}

urlpatterns = [
    path("ws/http/", open_stream),
    path("ws/http/<str:sid>/", post_frames),
]
