"""The streaming scenario's emitter process: server code on another process sending
`--tps` events/s to each user's room, through our emit API or python-socketio's
write-only manager. Each event carries its send time (`ts`) for the latency.

    python -m bench.scale.emitter ours|socketio PLAN OUT   (started by the scenario)

Top-level imports stay light: this process's start-up counts in the emitter CPU it
reports.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bench.harness import cpu_seconds
from bench.socketio_server import redis_emitter


def room_sender(kind: str, plan: dict):
    """`send(user_id, data)` of one kind of server: an event to the user's room."""
    if kind == "ours":
        import django

        django.setup()
        from realtime import emit

        async def send(user_id: int, data: dict) -> None:
            await emit.user_emit(user_id=user_id, event="events", data=data)

        return send
    manager = redis_emitter(plan["redis_url"], plan["channel"])

    async def send(user_id: int, data: dict) -> None:
        await manager.emit("events", data, room=f"user:{user_id}")

    return send


async def emit_streams(kind: str, plan: dict) -> None:
    """Every user's stream, paced, phases spread over one event interval."""
    send = room_sender(kind, plan)
    delay = 1.0 / plan["tps"]
    loop = asyncio.get_running_loop()

    async def stream(user: dict, start: float) -> None:
        for i in range(plan["tokens"]):
            await asyncio.sleep(max(0.0, start + i * delay - loop.time()))
            data = {
                "chat_id": user["chat_id"],
                "message_id": user["message_id"],
                "data": {"type": "message", "data": {"content": f"t{i} "}},
                "ts": time.time(),
            }
            await send(user["user_id"], data)

    start = loop.time() + 0.2
    users = plan["users"]
    await asyncio.gather(
        *(stream(u, start + delay * i / len(users)) for i, u in enumerate(users))
    )


def main(kind: str, plan_path: str, out_path: str) -> None:
    """Emit the plan's streams, then write this process's CPU time."""
    plan = json.loads(Path(plan_path).read_text())
    asyncio.run(emit_streams(kind, plan))
    Path(out_path).write_text(json.dumps({"cpu": cpu_seconds(os.getpid())}))


if __name__ == "__main__":
    main(*sys.argv[1:])
