"""This project reached over the HTTP transport: the same fleet as bench.scale's
`Ours`, with each client an HTTP session instead of a WebSocket."""

import json

from bench.harness import HOST
from bench.rawhttp import RawHttp
from bench.scale.targets import Ours


class OursHttp(Ours):
    """Ours, every client a `POST /ws/http/` stream (docs/protocol.md §10)."""

    async def open_client(self, port: int, token: str) -> RawHttp:
        """A session past its `connect` frame, sent in the opening POST's body."""
        hello = {"event": "connect", "data": {"token": token}, "ack": 0}
        stream = await RawHttp.connect(HOST, port, json.dumps(hello) + "\n")
        reply = await stream.recv()
        if b'"sid"' not in reply:
            raise RuntimeError(f"connect refused: {reply[:200]!r}")
        return stream
