from django.apps import AppConfig


class ChatsConfig(AppConfig):
    """Chat streaming: the event emitter, the event caller and distributed tasks."""

    name = "chats"
