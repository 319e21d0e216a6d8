"""Dialects: the two payload shapes one socket can speak, chosen per connection.

`realtime` is this project's own protocol (docs/protocol.md). `openwebui` is the shape
Open WebUI's front end sends and expects (docs/migration.md): Yjs bytes as JSON lists
of ints, channel events in `events:channel` envelopes, chat presence in `events`.
A client picks one with the `protocol` field of its connect frame; the browser adapter
in socket.io-compatible mode picks `openwebui`. Identity never comes from a payload in
either dialect.

An emit can carry a variant per dialect (`emit.room_emit(..., variants=...)`): each
member of the room gets the frame of its own dialect, or the default frame.
"""

from datetime import UTC, datetime
from typing import Any

REALTIME = "realtime"
OPENWEBUI = "openwebui"
PROTOCOLS = (REALTIME, OPENWEBUI)

# A variant: the (event, data) a dialect gets instead of the default, or None when
# that dialect gets nothing (an event its clients do not read).
Variant = tuple[str, Any] | None
Variants = dict[str, Variant]


def epoch_ns(at: datetime | None) -> int | None:
    """A time as Open WebUI writes it in socket payloads: integer nanoseconds since
    the epoch (exact: no float on the way)."""
    if at is None:
        return None
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
