"""The ceiling: a raw `websockets` broadcast server, no framework, no Redis.

A client's first frame is its JWT (decoded, not looked up); it answers "ok" and the
socket joins the one room. A frame "bcast N BYTES" sends N frames of that size to
every room member with `websockets.broadcast` (this connection is the emitter).

    python -m bench.ws_server --port 9100   (SECRET_KEY from the environment)
"""

import argparse
import asyncio
import json
import os

import jwt
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed


async def main(port: int) -> None:
    """Serve the one room on a port until killed."""
    key = os.environ["SECRET_KEY"]
    room: set = set()

    async def handler(ws):
        first = await ws.recv()
        if first.startswith("bcast "):  # the emitter: any number of bursts
            command = first
            while True:
                _, count, size = command.split()
                for i in range(int(count)):
                    frame = json.dumps({"event": "bench", "data": {"i": i}})
                    broadcast(room, frame.ljust(int(size)))
                    if i % 16 == 15:
                        await asyncio.sleep(0)  # let the writers run
                try:
                    command = await ws.recv()
                except ConnectionClosed:
                    return
        try:
            jwt.decode(first, key, algorithms=["HS256"])
        except jwt.PyJWTError:
            await ws.close(4401)
            return
        await ws.send("ok")
        room.add(ws)
        try:
            await ws.wait_closed()
        finally:
            room.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
