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

from typing import Any

REALTIME = "realtime"
OPENWEBUI = "openwebui"
PROTOCOLS = (REALTIME, OPENWEBUI)

# A variant: the (event, data) a dialect gets instead of the default, or None when
# that dialect gets nothing (an event its clients do not read).
Variant = tuple[str, Any] | None
Variants = dict[str, Variant]
