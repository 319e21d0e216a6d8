"""ASGI entry point: HTTP goes to Django, /ws/ to the real-time consumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402

from realtime.consumer import RealtimeConsumer  # noqa: E402
from realtime.hub import stop_hub  # noqa: E402
from realtime.origin import OriginMiddleware  # noqa: E402


async def lifespan(scope, receive, send):
    """ASGI lifespan (uvicorn): on shutdown, take this instance out of shared state
    at once instead of waiting for peers to reap it. daphne sends no lifespan events."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_hub()
            await send({"type": "lifespan.shutdown.complete"})
            return


websocket_urlpatterns = [path("ws/", RealtimeConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginMiddleware(URLRouter(websocket_urlpatterns)),
        "lifespan": lifespan,
    }
)
