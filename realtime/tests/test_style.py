"""Style is part of the suite: ruff lint and format (Black style, line length 88)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(args):
    result = _ruff(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def _git(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_no_redis_dump_is_committed_and_one_would_be_ignored():
    # A redis-server started in the checkout writes dump.rdb there on shutdown.
    tracked = _git("ls-files").stdout.split()
    assert [f for f in tracked if f.endswith(".rdb")] == []
    assert _git("check-ignore", "-q", "dump.rdb").returncode == 0
