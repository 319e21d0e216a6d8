from django.apps import AppConfig


class ChatsConfig(AppConfig):
    """Chat streaming: the event emitter, the event caller and distributed tasks."""

    name = "chats"
    verbose_name = "Chats"

    def ready(self) -> None:
        # Socket events and the chat room kind register themselves on import.
        from chats import events as chat_events  # noqa: F401
        from chats import streams
        from realtime import events

        events.on_shutdown(streams.streams_flush_all)
