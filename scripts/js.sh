#!/usr/bin/env bash
# Run by serve.sh and test.sh: install the npm packages when package-lock.json changed
# and rebuild the Yjs bundle of the notes demo when its inputs changed. Third-party
# code is installed here, never committed. Without npm the rest still works: the notes
# page then says its bundle is missing and the Node tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: skipping the Yjs bundle (notes page) and the adapter's Node tests" >&2
  exit 0
fi
lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$lock" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" > node_modules/.lock.sha256
fi
out="realtime/static/realtime/vendor/yjs.js"
want="$(cat package-lock.json js/yjs-entry.mjs | sha256sum | cut -d' ' -f1)"
if [ ! -f "$out" ] || [ "$(cat node_modules/.bundle.sha256 2>/dev/null)" != "$want" ]; then
  node_modules/.bin/esbuild js/yjs-entry.mjs --bundle --format=esm --minify \
    --outfile="$out" --log-level=warning
  echo "$want" > node_modules/.bundle.sha256
fi
