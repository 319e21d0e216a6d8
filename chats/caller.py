"""The event caller: ask one session of a user something and wait for the answer
(`execute:python`, `execute:tool`, `request:chat:completion`)."""

from collections.abc import Awaitable, Callable
from typing import Any

from realtime.calls import session_call


def get_event_call(
    user_id: int,
    session_id: str,
    chat_id: str,
    message_id: str,
    timeout: float | None = None,
) -> Callable[[dict], Awaitable[Any]]:
    """An async callable sending `events` as a server call to that one session.

    It raises forbidden if the session is not the user's, disconnected if the session
    is gone or leaves before replying, timeout after `timeout` (default CALL_TIMEOUT),
    and realtime.errors.CallError if the client replies with an error.
    """

    async def call(event: dict) -> Any:
        return await session_call(
            user_id=user_id,
            sid=session_id,
            event="events",
            data={
                "chat_id": chat_id,
                "message_id": message_id,
                "session_id": session_id,
                "data": with_session_id(event, session_id),
            },
            timeout=timeout,
        )

    return call


def with_session_id(event: dict, session_id: str) -> dict:
    """The call's event with `session_id` in its data: Open WebUI's front end answers
    `execute:python`, `execute:tool` and the other calls only when `data.session_id`
    is its own socket id, since every tab of the user is in the user's room."""
    data = event.get("data")
    if isinstance(data, dict):
        return {**event, "data": {**data, "session_id": session_id}}
    return event
