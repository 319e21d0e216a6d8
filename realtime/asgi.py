"""ASGI entry point: HTTP goes to Django, /ws/ to the real-time consumer, /ws/http/ to
the HTTP transport."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

# /static/ (the browser adapter, the demo's scripts and its Yjs bundle) is served by
# the app itself, so `scripts/serve.sh` needs no web server in front or collectstatic.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

import logging  # noqa: E402

from django.urls import path, re_path  # noqa: E402

from realtime import events  # noqa: E402
from realtime.consumer import RealtimeConsumer  # noqa: E402
from realtime.http_transport import endpoints as http_transport  # noqa: E402
from realtime.hub import stop_hub  # noqa: E402
from realtime.origin import OriginMiddleware  # noqa: E402
from realtime.tasks import stop_all_local  # noqa: E402

log = logging.getLogger(__name__)


async def shutdown() -> None:
    """Stop this instance's tasks (they flush what they streamed), run the apps'
    shutdown hooks, then leave shared state."""
    try:
        stopped = await stop_all_local()
        if stopped:
            log.info("stopped %d running tasks", stopped)
        for hook in events.shutdown_hooks():
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %s failed", hook.__name__)
    finally:
        await stop_hub()


async def lifespan(scope, receive, send):
    """ASGI lifespan (uvicorn): on shutdown, take this instance out of shared state
    at once instead of waiting for peers to reap it. daphne sends no lifespan events."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


# /ws/socket.io/ is the path Open WebUI's front end asks for (its io() `path` option);
# the same consumer answers there, so its socket.io path needs no proxy rewrite.
websocket_urlpatterns = [
    path("ws/", RealtimeConsumer.as_asgi()),
    path("ws/socket.io/", RealtimeConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        # The HTTP transport's two paths (realtime.http_transport), then Django.
        "http": URLRouter([*http_transport.urlpatterns, re_path(r"", django_asgi_app)]),
        "websocket": OriginMiddleware(URLRouter(websocket_urlpatterns)),
        "lifespan": lifespan,
    }
)
