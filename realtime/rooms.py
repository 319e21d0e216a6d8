"""Room names."""

# Sessions that want online-user changes (every session that sent user-join).
PRESENCE_ROOM = "presence"


def user_room(user_id: int) -> str:
    """Every session of a user."""
    return f"user:{user_id}"


def channel_room(channel_id: object) -> str:
    """Members of a channel (group chat)."""
    return f"channel:{channel_id}"


def note_room(note_id: object) -> str:
    """Sessions that joined a note."""
    return f"note:{note_id}"


def doc_room(document_id: object) -> str:
    """Editors of a Yjs document."""
    return f"doc_{document_id}"
