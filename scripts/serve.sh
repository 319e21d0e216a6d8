#!/usr/bin/env bash
# Start the server on the embedded default: SQLite, in-memory layer, no Redis needed.
# Usage: scripts/serve.sh [port]   (environment variables from the README apply)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
scripts/js.sh
python manage.py migrate --noinput >/dev/null
python manage.py seed_demo
port="${1:-${PORT:-8000}}"
echo "Serving on http://127.0.0.1:${port}/  (WebSocket: ws://127.0.0.1:${port}/ws/)"
# uvicorn refuses frames over the limit itself with close 1009, before buffering them,
# and lets the app use every close code (daphne allows only 1000 and 3000-4999). Its
# ping closes peers that stopped answering (WS_PING_*, or Open WebUI's names).
exec uvicorn realtime.asgi:application --host "${HOST:-127.0.0.1}" --port "${port}" \
  --ws-max-size "${MAX_FRAME_BYTES:-16777216}" --ws-per-message-deflate false --no-access-log \
  --ws-ping-interval "${WS_PING_INTERVAL:-${WEBSOCKET_SERVER_PING_INTERVAL:-25}}" \
  --ws-ping-timeout "${WS_PING_TIMEOUT:-${WEBSOCKET_SERVER_PING_TIMEOUT:-20}}"
