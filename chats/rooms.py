"""Room names of chats."""

from realtime.rooms import room_kind

# Sessions that joined a chat with events:chat join (presence, typing, shared copies).
CHAT_ROOM_PREFIX = "chat:"

room_kind("chats", prefix=CHAT_ROOM_PREFIX, title="Open chats")


def chat_room(chat_id: object) -> str:
    """Sessions that have a chat open (its owner's and its collaborators')."""
    return f"{CHAT_ROOM_PREFIX}{chat_id}"
