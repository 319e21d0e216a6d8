"""Room names of channels."""


def channel_room(channel_id: object) -> str:
    """Members of a channel (group chat)."""
    return f"channel:{channel_id}"
