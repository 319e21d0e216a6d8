from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"

    def ready(self) -> None:
        # Core events and model signals register themselves on import.
        from realtime import handlers, signals, usage  # noqa: F401
        from realtime.logs import server_logging_install

        # uvicorn's loggers: no query strings, no INFO line per connection.
        server_logging_install()
