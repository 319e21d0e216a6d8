"""What a channel list holds: a message with its deadline and its channel's name."""

import struct
import time

import msgpack

# Deadline (epoch seconds, big-endian double) and length of the channel name. The
# send script reads the deadline with Lua's struct.unpack(">d") to drop expired heads.
HEADER = struct.Struct(">dH")


def pack(channel: str, message: dict, expiry: float) -> bytes:
    """One list element: deadline, channel name, msgpack of the message."""
    return pack_body(channel, msgpack.packb(message, use_bin_type=True), expiry)


def pack_body(channel: str, body: bytes, expiry: float) -> bytes:
    """As pack, for a message already serialized (group_send serializes it once)."""
    name = channel.encode()
    return HEADER.pack(time.time() + expiry, len(name)) + name + body


def unpack(raw: bytes) -> tuple[float, str, dict]:
    """The deadline, channel name and message of one list element."""
    deadline, length = HEADER.unpack_from(raw)
    start = HEADER.size
    channel = raw[start : start + length].decode()
    return deadline, channel, msgpack.unpackb(raw[start + length :], raw=False)
