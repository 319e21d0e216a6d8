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
            data={"chat_id": chat_id, "message_id": message_id, "data": event},
            timeout=timeout,
        )

    return call
