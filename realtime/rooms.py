"""Room names."""

# Sessions that want online-user changes (every session that sent user-join).
PRESENCE_ROOM = "presence"


def user_room(user_id: int) -> str:
    """Every session of a user."""
    return f"user:{user_id}"


# Kinds of rooms that apps name for operators: name -> (room prefix, title).
_kinds: dict[str, tuple[str, str]] = {}


def room_kind(name: str, *, prefix: str, title: str) -> None:
    """Register a kind of room an app owns (notes: its Yjs documents, "doc_"), so
    operators' views (realtime_inspect, its --json) list the rooms of that kind."""
    _kinds[name] = (prefix, title)


def room_kinds() -> dict[str, tuple[str, str]]:
    """The registered room kinds: name -> (prefix, title)."""
    return dict(_kinds)
