"""The docs stay true: every setting is in the README, every event in the protocol."""

import re
from pathlib import Path

from realtime import events

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_setting_is_in_the_readme():
    settings_source = (ROOT / "realtime" / "settings.py").read_text()
    names = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings_source))
    assert names, "no settings found"
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == []


def test_every_registered_event_is_in_the_protocol_doc():
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    names = events.event_names()
    assert "user-join" in names
    missing = [n for n in names if f"`{n}`" not in protocol]
    assert missing == []


def test_every_error_code_is_in_the_protocol_doc():
    from realtime.errors import CODES

    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert sorted(c for c in CODES if f"`{c}`" not in protocol) == []


def test_the_readmes_demo_table_does_not_deny_a_registered_event():
    # Each page row names the event it shows; an event the server registers must not
    # be described as missing.
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `/")]
    usage = next(line for line in rows if line.startswith("| `/usage/` |"))
    assert "usage" in events.event_names()
    for denial in ("does not have", "not yet", "not supported"):
        assert denial not in usage, usage
