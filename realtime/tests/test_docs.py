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
