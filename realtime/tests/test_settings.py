"""Settings from the environment: a sqlite:// DATABASE_URL is SQLITE_PATH."""

import json
import os
import subprocess
import sys

import pytest

from realtime.launcher import BASE_DIR


def database_settings(**env: str) -> dict:
    """DATABASES["default"] as a fresh process computes it from this environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "SQLITE_PATH", "DB_CONN_MAX_AGE")
    }
    code = (
        "import json; from realtime import settings; "
        "print(json.dumps(settings.DATABASES['default'], default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", ["/tmp/rt-settings.sqlite3", "relative.sqlite3"])
def test_a_sqlite_database_url_gets_the_sqlite_path_settings(path):
    by_path = database_settings(SQLITE_PATH=path)
    by_url = database_settings(DATABASE_URL=f"sqlite:///{path}")
    assert by_url == by_path
    assert by_url["OPTIONS"] == {"timeout": 20, "transaction_mode": "IMMEDIATE"}


def test_a_postgres_url_is_taken_as_it_is():
    db = database_settings(DATABASE_URL="postgres://u:p@db.example:5433/app")
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"]) == (
        "django.db.backends.postgresql",
        "db.example",
        5433,
        "app",
    )
    assert db["CONN_MAX_AGE"] == 60
