"""A generation: the fake model streaming into one assistant message, as a task."""

import asyncio
import logging

from chats.emitter import CANCEL_TYPE, EventEmitter, get_event_emitter
from chats.fake_model import fake_generate
from chats.models import Message
from realtime import tasks

log = logging.getLogger(__name__)


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
    """Stream an answer. However it ends, the message records it: done by the
    model's chat:completion; stopped (by whom) or failed by a last chat:tasks:cancel,
    which keeps what was streamed."""
    emit = get_event_emitter(user_id, chat_id, message_id)
    try:
        return await fake_generate(
            emit,
            prompt=prompt,
            tokens=tokens,
            tokens_per_second=tokens_per_second,
            set_title=set_title,
        )
    except asyncio.CancelledError:
        # Cancelled by nobody through realtime.tasks: the event loop is closing.
        reason = tasks.stop_reason() or Message.StopReason.SHUTDOWN
        await _end(emit, state=Message.State.STOPPED, reason=reason)
        raise
    except Exception:
        await _end(emit, state=Message.State.FAILED, reason=Message.StopReason.ERROR)
        raise
    finally:
        await emit.close()


async def _end(emit: EventEmitter, *, state: str, reason: str) -> None:
    # Storing the event writes what was streamed first. If that fails too (the
    # database is what failed), the original error is the one to raise.
    try:
        await emit({"type": CANCEL_TYPE, "data": {"state": state, "reason": reason}})
    except Exception:
        log.exception("could not end %s/%s as %s", emit.chat_id, emit.message_id, state)
