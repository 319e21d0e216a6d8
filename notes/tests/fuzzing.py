"""Inputs for fuzzing the Yjs decoders: real updates (pycrdt, npm yjs and y-py ones),
and from them random, truncated, bit-flipped, spliced and crafted byte strings,
including the ones that crashed or exhausted the native decoders."""

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pycrdt

from notes.yjs_format import awareness_update, varstring, varuint

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ypy_0_6_2.json"

# Found by fuzzing: y-py 0.6.2 aborts the process on this one ("memory allocation of
# 176093659152 bytes failed"). Of the crafted ones below, the first makes pycrdt 0.14
# allocate over 500 MB and the fourth overflows its stack.
KNOWN_KILLERS = [base64.b64decode("tYuUq3wDXg==")]


def _crafted() -> list[bytes]:
    string_item = bytes([4]) + varuint(1) + varstring("content")
    return [
        # 2^28 clients declared in five bytes: pycrdt allocates over 500 MB.
        varuint(2**28),
        varuint(1) + varuint(2**29) + varuint(1) + varuint(0),  # structs
        varuint(0) + varuint(2**31),  # delete-set clients
        # An `any` array nested 40,000 deep: a stack overflow (SIGSEGV) in pycrdt.
        varuint(1)
        + varuint(1)
        + varuint(1)
        + varuint(0)
        + bytes([8])
        + varuint(1)
        + varstring("content")
        + varuint(1)
        + bytes([117, 1]) * 40_000
        + bytes([126]),
        # A string, a JSON list and an `any` list that claim a gigabyte.
        varuint(1)
        + varuint(1)
        + varuint(1)
        + varuint(0)
        + string_item
        + varuint(2**30),
        varuint(1)
        + varuint(1)
        + varuint(1)
        + varuint(0)
        + bytes([2])
        + varuint(1)
        + varstring("content")
        + varuint(2**30),
        # Clocks beyond 32 bits, integers beyond 2^53, an empty range.
        varuint(1)
        + varuint(1)
        + varuint(1)
        + varuint(2**40)
        + string_item
        + varstring("a")
        + varuint(0),
        varuint(1) + varuint(1) + varuint(2**60) + varuint(0) + bytes([0, 0]) + b"\0",
        # A subdocument, an unknown content kind, trailing bytes.
        varuint(1)
        + varuint(1)
        + varuint(1)
        + varuint(0)
        + bytes([9])
        + varuint(1)
        + varstring("content")
        + varstring("guid")
        + bytes([126])
        + varuint(0),
        varuint(1) + varuint(1) + varuint(1) + varuint(0) + bytes([0x1F]) + varuint(0),
        varuint(0) + varuint(0) + b"trailing",
    ]


def real_updates(seed: int = 0) -> list[bytes]:
    """Updates real clients make: pycrdt typing (with non-ASCII text), rich content
    (maps, arrays, XML, formatting, embeds), and the stored y-py and npm yjs ones."""
    rnd = random.Random(seed)
    updates: list[bytes] = []
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    doc.observe(lambda event: updates.append(event.update))
    for _ in range(40):
        if rnd.random() < 0.75 or len(text) < 3:
            chunk = rnd.choice(["a", "bc", "é", "😀", "日本", " word "])
            # pycrdt indexes UTF-8 bytes: insert at the end or the start only.
            text.insert(rnd.choice([0, len(text)]), chunk)
        else:
            del text[0 : len(str(text)[0].encode())]  # the first character
    text.format(0, len(str(text)[0].encode()), {"bold": True})
    text.insert_embed(0, {"image": "x.png"})
    shared = doc.get("meta", type=pycrdt.Map)
    shared["nested"] = {"list": [1, 2.5, "x", None, True, {"deep": [False]}]}
    shared["bytes"] = b"\x00\x01"
    array = doc.get("items", type=pycrdt.Array)
    array.extend([2**40, -3, "s"])
    xml = doc.get("xml", type=pycrdt.XmlFragment)
    xml.children.append(pycrdt.XmlElement("p", {"class": "x"}, [pycrdt.XmlText("t")]))
    updates.append(doc.get_update())
    for case in json.loads(FIXTURE.read_text())["cases"]:
        stored = ([case["snapshot"]] if case["snapshot"] else []) + case["updates"]
        updates.extend(base64.b64decode(u) for u in stored)
    return updates


def mutants(corpus: list[bytes], count: int, seed: int = 1) -> Iterator[bytes]:
    """`count` byte strings: the crafted killers first, then random ones and
    mutations of the corpus (truncated, bit-flipped, a byte replaced, a huge varint
    put in, two updates spliced), deterministic for a seed."""
    rnd = random.Random(seed)
    fixed = KNOWN_KILLERS + _crafted()
    yield from fixed[:count]
    huge = [2**k + d for k in (20, 24, 28, 31, 32, 40, 52, 53, 60, 63) for d in (0, 1)]
    for _ in range(count - len(fixed)):
        kind = rnd.random()
        if kind < 0.15:
            yield rnd.randbytes(rnd.randint(0, 64))
            continue
        data = bytearray(rnd.choice(corpus))
        at = rnd.randrange(len(data))
        if kind < 0.3:
            yield bytes(data[: rnd.randint(0, len(data) - 1)])
        elif kind < 0.6:
            for _ in range(rnd.randint(1, 4)):
                i = rnd.randrange(len(data))
                data[i] ^= 1 << rnd.randrange(8)
            yield bytes(data)
        elif kind < 0.7:
            data[at] = rnd.randrange(256)
            yield bytes(data)
        elif kind < 0.85:
            data[at : at + 1] = varuint(rnd.choice(huge))
            yield bytes(data)
        else:
            other = rnd.choice(corpus)
            yield bytes(data[:at]) + other[rnd.randrange(len(other)) :]


def _broken(rnd: random.Random, real: list[bytes], count: int, odd) -> Iterator[bytes]:
    """`count` of: random bytes, truncations and bit flips of `real` ones, `odd(data)`
    (the format's own kind of breakage, or None), and real ones unchanged."""
    for _ in range(count):
        data = bytearray(rnd.choice(real))
        kind = rnd.random()
        if kind < 0.2:
            yield rnd.randbytes(rnd.randint(0, 40))
        elif kind < 0.4:
            yield bytes(data[: rnd.randint(0, len(data) - 1)])
        elif kind < 0.6:
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
            yield bytes(data)
        elif kind < 0.85 and (broken := odd(data)) is not None:
            yield broken
        else:
            yield bytes(data)


def awareness_mutants(count: int, seed: int = 2) -> Iterator[bytes]:
    """Awareness updates, real and broken: bad JSON, huge counts, truncations."""
    rnd = random.Random(seed)
    real = [
        awareness_update(rnd.randrange(2**32), rnd.randrange(100), json.dumps(state))
        for state in ({"user": {"name": "a"}}, {"cursor": {"anchor": 1}}, None)
    ]
    yield from _broken(
        rnd,
        real,
        count,
        lambda data: varuint(rnd.choice([2**31, 2**53])) + bytes(data[1:]),
    )


def rich_updates(seed: int = 3) -> list[bytes]:
    """Updates of TipTap/ProseMirror editors (Open WebUI's): an XmlFragment named
    "default" or "prosemirror" with paragraphs, headings with attributes, nested
    lists, formatted runs and embeds, typed one change at a time."""
    rnd = random.Random(seed)
    updates: list[bytes] = []
    for name in ("default", "prosemirror"):
        doc = pycrdt.Doc()
        doc.observe(lambda event: updates.append(event.update))
        fragment = doc.get(name, type=pycrdt.XmlFragment)
        for i in range(15):
            kind = rnd.random()
            if kind < 0.4:
                para = fragment.children.append(pycrdt.XmlElement("paragraph"))
                run = para.children.append(pycrdt.XmlText(rnd.choice(["a", "é 😀"])))
                run.insert(len(str(run).encode()), "b", {"bold": True})
            elif kind < 0.6:
                heading = pycrdt.XmlElement("heading", {"level": str(i % 6 + 1)})
                fragment.children.append(heading).children.append(
                    pycrdt.XmlText("title")
                )
            elif kind < 0.8:
                items = fragment.children.append(pycrdt.XmlElement("bulletList"))
                item = items.children.append(pycrdt.XmlElement("listItem"))
                inner = item.children.append(pycrdt.XmlElement("paragraph"))
                inner.children.append(pycrdt.XmlText("item"))
            else:
                para = fragment.children.append(pycrdt.XmlElement("paragraph"))
                run = para.children.append(pycrdt.XmlText("x"))
                run.insert_embed(0, {"image": "y.png"})
        updates.append(doc.get_update())
    return updates


def int_lists(inputs: list[bytes], seed: int = 4) -> Iterator[list]:
    """The inputs as Open WebUI's int lists, a tenth of them broken the ways a list
    can be: a value over 255 or negative, a float, a bool, a string, null, a list."""
    rnd = random.Random(seed)
    wrong = [256, -1, 2**53, 1.5, True, "1", None, [1]]
    for data in inputs:
        values: list = list(data)
        if rnd.random() < 0.1:
            values.insert(rnd.randint(0, len(values)), rnd.choice(wrong))
        yield values


def json_awareness_mutants(count: int, seed: int = 5) -> Iterator[bytes]:
    """Open WebUI's awareness (UTF-8 JSON of {clientID: state}), real and broken: not
    UTF-8, not JSON, not an object, truncated, deeply nested."""
    rnd = random.Random(seed)
    real = [
        json.dumps({str(rnd.randrange(2**32)): state}).encode()
        for state in ({"user": {"name": "a", "color": "#fff"}}, {"cursor": None})
    ]
    odd = [b"[" * 10_000 + b"]" * 10_000, b"[1]", b'"s"', b"null", b"1e999"]
    yield from _broken(rnd, real, count, lambda data: rnd.choice(odd))
