"""Notes for tests, made through the services."""

from channels.db import database_sync_to_async

from notes import services


async def note_shared(owner, writers, content: str = "") -> str:
    """A note of `owner` that each of `writers` may write; its id."""

    def create():
        note = services.note_create(owner=owner, title="Shared", content=content)
        for user in writers:
            services.note_grant(note=note, user_id=user.id, permission="write")
        return note.id

    return await database_sync_to_async(create)()
