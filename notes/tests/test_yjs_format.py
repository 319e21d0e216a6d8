"""The structural check of Yjs updates and awareness updates (notes/yjs_format.py):
every real update passes, every crafted killer is refused, and whatever it lets
through pycrdt decodes without crashing, hanging or allocating much."""

import json
import struct
import subprocess
import sys
import textwrap

import pytest

from notes import yjs_format
from notes.tests import fuzzing

MAX = 10_000


def test_every_real_update_passes():
    for update in fuzzing.real_updates():
        assert yjs_format.check_update(update, max_structs=MAX) >= 0
    assert yjs_format.check_update(b"\x00\x00", max_structs=MAX) == 0  # empty diff
    # TipTap / ProseMirror documents (Open WebUI's): elements, XML text, formatting,
    # embeds under an XmlFragment.
    for update in fuzzing.rich_updates():
        assert yjs_format.check_update(update, max_structs=MAX) >= 0


def test_crafted_killers_are_refused():
    for data in fuzzing.KNOWN_KILLERS + fuzzing._crafted():
        with pytest.raises(yjs_format.Malformed):
            yjs_format.check_update(data, max_structs=MAX)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "unexpected end"),
        (yjs_format.varuint(2**53), "out of range"),
        (b"\xff" * 10, "too long"),
        (yjs_format.varuint(5), "exceeds the input"),
        (b"\x00\x00\x00", "after the update"),
        (b"\x01\x01\x01\x00\x04\x01\x07content\x02\xff\xfe\x00", "not UTF-8"),
        (b"\x01\x01\x01\x00\x05\x01\x07content\x01{\x00", "JSON"),
    ],
)
def test_refusals_say_why(data, reason):
    with pytest.raises(yjs_format.Malformed, match=reason):
        yjs_format.check_update(data, max_structs=MAX)


def test_struct_limit():
    doc_update = fuzzing.real_updates()[-1]
    structs = yjs_format.check_update(doc_update, max_structs=MAX)
    assert structs > 1
    with pytest.raises(yjs_format.Malformed, match="structs"):
        yjs_format.check_update(doc_update, max_structs=structs - 1)


def test_awareness_updates():
    real = yjs_format.awareness_update(7, 3, json.dumps({"user": {"name": "Ann"}}))
    assert yjs_format.check_awareness(real) == 1
    assert yjs_format.check_awareness(yjs_format.awareness_update(7, 4, "null")) == 1
    for broken in (
        yjs_format.awareness_update(7, 3, "{not json"),
        real[:-1],
        real + b"x",
        yjs_format.varuint(2**31) + real[1:],
        b"\xff\xff",
    ):
        with pytest.raises(yjs_format.Malformed):
            yjs_format.check_awareness(broken)


# The child decodes each length-prefixed input with pycrdt and answers, per input,
# (decoded, seconds, peak RSS in MB). It dies alone if pycrdt crashes.
CHILD = textwrap.dedent(
    """
    import struct, sys, time
    import pycrdt
    read, write = sys.stdin.buffer.read, sys.stdout.buffer.write
    def peak_mb():
        # VmHWM: this process's own peak. getrusage's ru_maxrss survives exec, so it
        # would report the (large) test process that forked this one.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    while len(head := read(4)) == 4:
        data = read(struct.unpack("<I", head)[0])
        start = time.perf_counter()
        doc = pycrdt.Doc()
        try:
            doc.apply_update(data)
            str(doc.get("content", type=pycrdt.Text))
            doc.get_update()
            ok = 1
        except BaseException:
            ok = 0
        peak = peak_mb()
        write(struct.pack("<Bdd", ok, time.perf_counter() - start, peak))
        sys.stdout.buffer.flush()
    """
)


def decode_in_child(inputs: list[bytes]) -> tuple[list, int]:
    """Feed inputs to a pycrdt child process; its answers and exit code."""
    payload = b"".join(struct.pack("<I", len(x)) + x for x in inputs)
    child = subprocess.run(
        [sys.executable, "-c", CHILD], input=payload, capture_output=True, timeout=300
    )
    out = child.stdout
    answers = [struct.unpack_from("<Bdd", out, i) for i in range(0, len(out), 17)]
    return answers, child.returncode


def test_what_the_check_lets_through_pycrdt_survives():
    """20,000 random and mutated inputs: the ones the check accepts all decode in
    pycrdt with a process that lives, each in well under a second, in little
    memory."""
    corpus = fuzzing.real_updates()
    accepted = []
    for data in fuzzing.mutants(corpus, 20_000):
        try:
            yjs_format.check_update(data, max_structs=MAX)
        except yjs_format.Malformed:
            continue
        accepted.append(data)
    assert len(accepted) > 1000  # the mutations reach the decoder's inner paths
    answers, code = decode_in_child(accepted)
    assert code == 0 and len(answers) == len(accepted)
    assert max(seconds for _, seconds, _ in answers) < 0.5
    assert max(peak for *_, peak in answers) < 200  # MB, the interpreter included


def test_without_the_check_pycrdt_dies():
    """Why the check exists: handed straight to pycrdt (in a child process), five
    bytes make it allocate over 500 MB and 80 KB of nesting overflow its stack."""
    huge, deep = fuzzing._crafted()[0], fuzzing._crafted()[3]
    answers, code = decode_in_child([huge])
    assert code == 0 and answers[0][2] > 400  # MB
    _, code = decode_in_child([deep])
    assert code < 0  # killed by a signal (SIGSEGV)
