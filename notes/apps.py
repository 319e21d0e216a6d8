from django.apps import AppConfig


class NotesConfig(AppConfig):
    """Collaborative notes on Yjs documents."""

    name = "notes"
