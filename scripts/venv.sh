# Sourced by the other scripts: make .venv and install requirements.txt when it changed.
# Python 3.11 to 3.14 are supported (scripts/check_wheels.sh keeps every requirement
# installable from wheels on each); an older one is refused here, before anything is
# installed, rather than failing later on syntax or a missing wheel.
python_ok() {  # interpreter: true if it is 3.11 or newer
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null
}
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "?"
}
if [ ! -x .venv/bin/python ]; then
  py="${PYTHON:-python3}"
  if ! command -v "$py" >/dev/null 2>&1; then
    echo "No Python found as '$py'. Install Python 3.11 or newer (3.11 to 3.14 are" \
      "supported), or point PYTHON at one: PYTHON=/usr/bin/python3.12 $0" >&2
    exit 1
  fi
  if ! python_ok "$py"; then
    echo "Python 3.11 or newer is needed, but '$py' is Python $(python_version "$py")." \
      "Install 3.11 to 3.14 and run again with it: PYTHON=/path/to/python3.12 $0" >&2
    exit 1
  fi
  "$py" -m venv .venv
elif ! python_ok .venv/bin/python; then
  echo ".venv was made with Python $(python_version .venv/bin/python); 3.11 or newer is" \
    "needed. Remove it (rm -rf .venv) and run again, with PYTHON=... if needed." >&2
  exit 1
fi
. .venv/bin/activate
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
