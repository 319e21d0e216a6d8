#!/usr/bin/env bash
# Run the whole test suite. Uses SQLite unless DATABASE_URL is set; the Redis and
# multi-process tests use the Redis at REDIS_TEST_URL (default 127.0.0.1:6379) and are
# skipped if it is down (REQUIRE_SERVICES=1 makes that an error instead).
# Extra arguments go to pytest, e.g. scripts/test.sh -k presence
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
# npm packages and the Yjs bundle for the browser tests (skipped when up to date).
scripts/js.sh
exec python -m pytest "$@"
