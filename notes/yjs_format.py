"""A bounded, pure-Python reading of Yjs binary formats, run on every byte string a
client sends before any native decoder sees it.

The native decoders trust the lengths and counts written in an update: a 5-byte update
that declares 2^28 clients makes pycrdt allocate over 500 MB, and 80 KB of nested
arrays overflow its stack (a segfault: no `except` catches it; y-py aborted outright on
a 7-byte one). So an update reaches pycrdt
only after this module has walked it completely: every count and length is checked
against the bytes that remain, every integer against the range Yjs itself can write,
nesting is capped, strings must be UTF-8 and JSON must parse, and nothing may follow
the delete set. A refusal raises `Malformed`; nothing here allocates more than a small
multiple of the input.

Formats (Yjs update encoding v1, y-protocols awareness), as read by yjs 13 and lib0:

    update    = clients:uint { structs:uint client:uint clock:uint struct* } delete_set
    struct    = info:u8  ( GC: len | Skip: len | Item )
    Item      = [origin:id] [right_origin:id] [parent] content      (by info's bits)
    parent    = (1 key:string | 0 id) [parent_sub:string]           (if no origins)
    delete_set= clients:uint { client:uint ranges:uint { clock:uint len:uint }* }
    awareness = clients:uint { client:uint clock:uint state:string(JSON) }*
"""

import orjson

# Yjs writes JavaScript numbers: integers above 2^53 - 1 never come from a real client.
MAX_SAFE = 2**53 - 1
# yrs keeps clocks and lengths in 32 bits.
MAX_CLOCK = 2**32 - 1
# Nesting of `any` values (arrays and maps in a Y.Map or Y.Array); the native decoder
# recurses once per level. Real documents nest a handful of levels.
MAX_ANY_DEPTH = 64

# Struct content kinds (the low five bits of `info`).
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
# Type refs of a ContentType: array, map, text, xml element, fragment, hook, xml text.
TYPE_REFS = range(7)
XML_ELEMENT, XML_HOOK = 3, 5
ORIGIN, RIGHT_ORIGIN, PARENT_SUB = 0x80, 0x40, 0x20


class Malformed(ValueError):
    """Bytes that are not a well-formed, bounded Yjs update or awareness update."""


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def left(self) -> int:
        return self.end - self.pos

    def u8(self) -> int:
        if self.pos >= self.end:
            raise Malformed("unexpected end")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self, limit: int = MAX_SAFE) -> int:
        """A varuint (7 bits a byte, least significant first) no bigger than limit."""
        data, pos, end = self.data, self.pos, self.end
        value = shift = 0
        while pos < end:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                if value > limit:
                    raise Malformed(f"integer {value} out of range")
                return value
            shift += 7
            if shift > 56:
                raise Malformed("integer too long")
        raise Malformed("unexpected end")

    def count(self, min_bytes_each: int) -> int:
        """A count of things that take at least `min_bytes_each` bytes each: it can
        never exceed what the rest of the input could hold."""
        value = self.uint()
        if value * min_bytes_each > self.left():
            raise Malformed(f"count {value} exceeds the input")
        return value

    def int(self) -> None:
        """A signed varint (lib0 writeVarInt): sign and 6 bits first."""
        first = self.u8()
        if first & 0x80:
            self.uint()

    def raw(self) -> memoryview:
        length = self.uint()
        if length > self.left():
            raise Malformed(f"length {length} exceeds the input")
        start = self.pos
        self.pos += length
        return memoryview(self.data)[start : self.pos]

    def string(self) -> str:
        try:
            return str(self.raw(), "utf-8")
        except UnicodeDecodeError:
            raise Malformed("string is not UTF-8") from None

    def json(self, allow_undefined: bool = False) -> None:
        text = self.string()
        if allow_undefined and text == "undefined":
            return
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            raise Malformed("embedded JSON does not parse") from None

    def skip(self, n: int) -> None:
        if n > self.left():
            raise Malformed("unexpected end")
        self.pos += n

    def any(self, depth: int = 0) -> None:
        """One lib0 `any` value, with nesting capped at MAX_ANY_DEPTH."""
        if depth > MAX_ANY_DEPTH:
            raise Malformed("values nested too deeply")
        tag = self.u8()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:
            self.int()
        elif tag == 124:
            self.skip(4)
        elif tag in (123, 122):  # float64, bigint64
            self.skip(8)
        elif tag == 119:
            self.string()
        elif tag == 118:  # object: key, value pairs
            for _ in range(self.count(2)):
                self.string()
                self.any(depth + 1)
        elif tag == 117:  # array
            for _ in range(self.count(1)):
                self.any(depth + 1)
        elif tag == 116:
            self.raw()
        else:
            raise Malformed(f"unknown value tag {tag}")


def _id(reader: _Reader) -> None:
    reader.uint()  # client
    reader.uint(MAX_CLOCK)  # clock


def _content(reader: _Reader, kind: int) -> int:
    """Read one item's content; returns its length in clock units (at least 1)."""
    if kind == DELETED:
        length = reader.uint(MAX_CLOCK)
    elif kind == JSON:
        length = reader.count(1)
        for _ in range(length):
            reader.json(allow_undefined=True)
    elif kind == BINARY:
        reader.raw()
        length = 1
    elif kind == STRING:
        text = reader.string()
        length = len(text.encode("utf-16-le")) // 2  # Yjs counts UTF-16 units
    elif kind == EMBED:
        reader.json()
        length = 1
    elif kind == FORMAT:
        reader.string()
        reader.json()
        length = 1
    elif kind == TYPE:
        ref = reader.uint()
        if ref not in TYPE_REFS:
            raise Malformed(f"unknown type ref {ref}")
        if ref in (XML_ELEMENT, XML_HOOK):
            reader.string()  # node or hook name
        length = 1
    elif kind == ANY:
        length = reader.count(1)
        for _ in range(length):
            reader.any()
    else:
        # 9 is a subdocument: notes have none, and refusing it keeps the native
        # code's subdocument handling out of reach. The rest are not kinds at all.
        raise Malformed(f"unsupported content kind {kind}")
    if length < 1:
        raise Malformed("empty content")
    return length


def check_update(data: bytes, *, max_structs: int) -> int:
    """Walk a Yjs v1 update completely; returns its number of structs. Raises
    Malformed for anything a Yjs encoder could not have written, for more than
    `max_structs` structs, or for bytes left over."""
    reader = _Reader(data)
    structs = 0
    for _ in range(reader.count(3)):
        n = reader.count(2)
        structs += n
        if structs > max_structs:
            raise Malformed(f"more than {max_structs} structs")
        reader.uint()  # client
        clock = reader.uint(MAX_CLOCK)
        for _ in range(n):
            info = reader.u8()
            kind = info & 0x1F
            if kind in (GC, SKIP):
                length = reader.uint(MAX_CLOCK)
                if length < 1:
                    raise Malformed("empty range")
            else:
                if info & ORIGIN:
                    _id(reader)
                if info & RIGHT_ORIGIN:
                    _id(reader)
                if not info & (ORIGIN | RIGHT_ORIGIN):
                    parent = reader.uint()
                    if parent == 1:
                        reader.string()  # a root type's name
                    elif parent == 0:
                        _id(reader)
                    else:
                        raise Malformed("bad parent info")
                    if info & PARENT_SUB:
                        reader.string()
                length = _content(reader, kind)
            clock += length
            if clock > MAX_CLOCK:
                raise Malformed("clock out of range")
    for _ in range(reader.count(2)):
        reader.uint()  # client
        for _ in range(reader.count(2)):
            start = reader.uint(MAX_CLOCK)
            length = reader.uint(MAX_CLOCK)
            if length < 1 or start + length > MAX_CLOCK:
                raise Malformed("bad delete range")
    if reader.left():
        raise Malformed(f"{reader.left()} bytes after the update")
    return structs


def check_awareness(data: bytes) -> int:
    """Walk a y-protocols awareness update; returns how many clients it describes.
    Every state must be JSON (browsers JSON.parse it)."""
    reader = _Reader(data)
    clients = reader.count(3)
    for _ in range(clients):
        reader.uint()  # client id
        reader.uint()  # clock
        reader.json()
    if reader.left():
        raise Malformed(f"{reader.left()} bytes after the awareness update")
    return clients


# --- Writing (for clients made in Python: tests, benchmarks) ---------------------


def varuint(n: int) -> bytes:
    """lib0's unsigned varint."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def varstring(text: str) -> bytes:
    """lib0's length-prefixed UTF-8 string."""
    data = text.encode()
    return varuint(len(data)) + data


def awareness_update(client_id: int, clock: int, state_json: str) -> bytes:
    """A y-protocols awareness update for one client."""
    return varuint(1) + varuint(client_id) + varuint(clock) + varstring(state_json)
