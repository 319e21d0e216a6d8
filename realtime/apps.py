from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"

    def ready(self) -> None:
        # Core events, layer messages, worker jobs and model signals register
        # themselves on import.
        from realtime import calls, handlers, signals, tasks, usage, worker  # noqa: F401
        from realtime.logs import server_logging_install

        # uvicorn's loggers: no query strings, no INFO line per connection.
        server_logging_install()
