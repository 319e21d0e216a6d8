"""Room names and the channel-layer group behind each room."""

import hashlib
import re

# Sessions that want online-user changes (every session that sent user-join).
PRESENCE_ROOM = "presence"

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]")


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


def group_name(room: str) -> str:
    """The channel-layer group of a room.

    Group names allow only [A-Za-z0-9_.-] and under 100 characters, and room names
    such as "user:7" do not fit; a readable part plus a hash keeps them unique.
    """
    digest = hashlib.blake2s(room.encode(), digest_size=10).hexdigest()
    return f"rm.{_UNSAFE.sub('_', room)[:60]}.{digest}"
