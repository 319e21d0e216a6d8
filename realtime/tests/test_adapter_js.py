"""The browser adapter's unit tests (js/tests/, Node's test runner) run here."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_adapter_unit_tests_pass_under_node():
    node = shutil.which("node")
    if node is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but node is not installed")
        pytest.skip("node is not installed")
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", "js/tests/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # A runner that found no test files would also exit 0.
    passed = re.search(r"pass (\d+)", report)
    assert passed and int(passed.group(1)) >= 20, report
