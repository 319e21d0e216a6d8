from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    """Group and direct conversations (Open WebUI's "channels")."""

    name = "channels_app"
    label = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        # The socket events, and the demo channel that seed_demo creates.
        from channels_app import demo, events  # noqa: F401
