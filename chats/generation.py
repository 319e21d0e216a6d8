"""A generation: the fake model streaming into one assistant message, as a task."""

from chats.emitter import get_event_emitter
from chats.fake_model import fake_generate


async def generation_run(
    *,
    user_id: int,
    chat_id: str,
    message_id: str,
    prompt: str,
    tokens: int,
    tokens_per_second: float,
    set_title: bool = True,
) -> str:
    """Stream an answer; when stopped, keep what was streamed and tell the user."""
    emit = get_event_emitter(user_id, chat_id, message_id)
    try:
        return await fake_generate(
            emit,
            prompt=prompt,
            tokens=tokens,
            tokens_per_second=tokens_per_second,
            set_title=set_title,
        )
    except BaseException:
        # Stopped or failed: what was streamed so far is written before anything else.
        await emit.flush()
        await emit({"type": "chat:tasks:cancel", "data": {}})
        raise
    finally:
        await emit.close()
