"""The setup scripts a newcomer runs first: scripts/venv.sh refuses a Python older
than 3.11 with a message that says what to do, before installing anything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def source_venv(tmp_path: Path, python: str) -> subprocess.CompletedProcess:
    """Source scripts/venv.sh in a fresh copy of the repo's top (no .venv yet)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv.sh", tmp_path / "scripts" / "venv.sh")
    shutil.copy(ROOT / "requirements.txt", tmp_path / "requirements.txt")
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail; . scripts/venv.sh; echo sourced"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHON": python},
        capture_output=True,
        text=True,
        timeout=60,
    )


def old_python(tmp_path: Path, version: tuple[int, int]) -> str:
    """This interpreter, reporting an older version to the `-c` checks."""
    shim = tmp_path / f"python{version[0]}.{version[1]}"
    shim.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import sys; sys.version_info = {version + (0,)};'
        ' exec(sys.argv[1])" "$2"\n'
    )
    shim.chmod(0o755)
    return str(shim)


def test_an_old_python_is_refused_with_a_clear_message(tmp_path):
    result = source_venv(tmp_path, old_python(tmp_path, (3, 9)))
    assert result.returncode == 1
    assert "Python 3.11 or newer is needed" in result.stderr
    assert "is Python 3.9" in result.stderr and "PYTHON=" in result.stderr
    assert not (tmp_path / ".venv").exists()  # nothing was installed


def test_a_missing_python_is_named(tmp_path):
    result = source_venv(tmp_path, "python3.0-not-here")
    assert result.returncode == 1
    assert "No Python found as 'python3.0-not-here'" in result.stderr


@pytest.mark.parametrize("version", [(3, 11), (3, 14)])
def test_supported_versions_pass_the_check(tmp_path, version):
    # Only the check runs: the venv step itself fails on the shim, after the check.
    result = source_venv(tmp_path, old_python(tmp_path, version))
    assert "3.11 or newer is needed" not in result.stderr
