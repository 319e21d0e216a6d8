#!/usr/bin/env bash
# Start the server on the embedded default: SQLite, in-memory layer, no Redis needed.
# Usage: scripts/serve.sh [port]   (environment variables from the README apply)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
python manage.py migrate --noinput >/dev/null
python manage.py seed_demo
port="${1:-${PORT:-8000}}"
echo "Serving on http://127.0.0.1:${port}/  (WebSocket: ws://127.0.0.1:${port}/ws/)"
exec daphne -b "${HOST:-127.0.0.1}" -p "${port}" realtime.asgi:application
