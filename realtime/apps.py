import logging

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger(__name__)

# Said at every start while ENABLE_WEBSOCKET_SUPPORT is false (README, Open WebUI's
# settings): the setting cannot do what it does in Open WebUI yet.
NO_POLLING_WARNING = (
    "ENABLE_WEBSOCKET_SUPPORT=false: this server has no HTTP long-polling transport "
    "yet, so clients still connect over WebSocket (the browser adapter falls back "
    "with a console warning); a proxy in front must pass WebSocket upgrades"
)


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"

    def ready(self) -> None:
        # Core events, layer messages, worker jobs and model signals register
        # themselves on import.
        from realtime import calls, handlers, signals, tasks, tokens, usage, worker  # noqa: F401
        from realtime.logs import server_logging_install

        # uvicorn's loggers: no query strings, no INFO line per connection.
        server_logging_install()
        if not settings.ENABLE_WEBSOCKET_SUPPORT:
            log.warning(NO_POLLING_WARNING)
