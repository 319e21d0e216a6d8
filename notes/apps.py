from django.apps import AppConfig


class NotesConfig(AppConfig):
    """Collaborative notes on Yjs documents."""

    name = "notes"
    verbose_name = "Notes"

    def ready(self) -> None:
        from notes import events as note_events
        from realtime import events

        events.on_shutdown(note_events.saves_flush_all)
