from django.apps import AppConfig


class NotesConfig(AppConfig):
    """Collaborative notes on Yjs documents."""

    name = "notes"
    verbose_name = "Notes"

    def ready(self) -> None:
        # Socket events and worker jobs register themselves on import.
        from notes import events as note_events
        from notes import jobs  # noqa: F401
        from realtime import events

        events.on_shutdown(note_events.saves_flush_all)
