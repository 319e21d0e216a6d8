from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    """Group and direct conversations (Open WebUI's "channels")."""

    name = "channels_app"
    label = "channels_app"
