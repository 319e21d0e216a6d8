from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    """Group and direct conversations (Open WebUI's "channels")."""

    name = "channels_app"
    label = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        from channels_app import events  # noqa: F401  (registers the socket events)
