"""ASGI entry point: HTTP goes to Django, /ws/ to the real-time consumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402

from realtime.consumer import RealtimeConsumer  # noqa: E402
from realtime.origin import OriginMiddleware  # noqa: E402

websocket_urlpatterns = [path("ws/", RealtimeConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
