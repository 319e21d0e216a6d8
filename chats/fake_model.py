"""A built-in fake model: deterministic text at a set pace, with status, sources and a
title, streamed through the event emitter like a real model's output."""

import asyncio
import hashlib

from chats.emitter import EventEmitter

MODEL_ID = "fake"
_WORDS = (
    "the model streams tokens to every session of the user while the server "
    "persists them once per flush interval so nothing is lost when a client "
    "disconnects or an instance stops gracefully and the answer stays whole"
).split()


def fake_tokens(prompt: str, count: int) -> list[str]:
    """The answer to a prompt: the same prompt always gives the same tokens."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    return [
        _WORDS[(seed + i * 7) % len(_WORDS)] + ("." if i == count - 1 else " ")
        for i in range(count)
    ]


def fake_title(prompt: str) -> str:
    """A short title for the chat, derived from the prompt."""
    words = prompt.split()
    return " ".join(words[:6]).capitalize() or "New Chat"


async def fake_generate(
    emit: EventEmitter,
    *,
    prompt: str,
    tokens: int,
    tokens_per_second: float,
    set_title: bool = True,
) -> str:
    """Stream an answer through `emit`; returns the full text."""
    await emit({"type": "status", "data": {"action": "thinking", "done": False}})
    await emit(
        {
            "type": "source",
            "data": {
                "source": {"name": "Fake encyclopedia", "id": "fake-encyclopedia"},
                "document": [f"Background on: {prompt[:80]}"],
                "metadata": [{"source": "fake-encyclopedia"}],
            },
        }
    )
    await emit({"type": "status", "data": {"action": "generating", "done": False}})
    pieces = fake_tokens(prompt, tokens)
    delay = 1.0 / tokens_per_second
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, piece in enumerate(pieces):
        # Pace against the clock, so slow emits do not stretch the answer.
        await asyncio.sleep(max(0.0, start + (i + 1) * delay - loop.time()))
        await emit({"type": "message", "data": {"content": piece}})
    content = "".join(pieces)
    await emit({"type": "status", "data": {"action": "generating", "done": True}})
    completion = {"done": True, "content": content}
    if set_title:
        completion["title"] = fake_title(prompt)
    await emit({"type": "chat:completion", "data": completion})
    return content
