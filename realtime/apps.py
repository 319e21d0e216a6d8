import logging

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger(__name__)

# Said at every start while ENABLE_WEBSOCKET_SUPPORT is false (README, Open WebUI's
# settings), since every client then needs the HTTP transport.
NO_WEBSOCKET_WARNING = (
    "ENABLE_WEBSOCKET_SUPPORT=false: WebSocket handshakes are refused; clients "
    "connect over the HTTP transport at /ws/http/ (the browser adapter falls back "
    "by itself)"
)


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"

    def ready(self) -> None:
        # Core events, layer messages, worker jobs and model signals register
        # themselves on import.
        from realtime import calls, handlers, signals, tasks, tokens, usage, worker  # noqa: F401
        from realtime.http_transport import post  # noqa: F401
        from realtime.logs import server_logging_install

        # uvicorn's loggers: no query strings, no INFO line per connection.
        server_logging_install()
        if not settings.ENABLE_WEBSOCKET_SUPPORT:
            log.warning(NO_WEBSOCKET_WARNING)
