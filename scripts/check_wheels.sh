#!/usr/bin/env bash
# Check that every pinned requirement (and everything it pulls in) installs from a
# binary wheel on every supported CPython and platform, so that no user's install
# needs a compiler or a Rust toolchain. Resolves against the package index without
# installing anything. Run by .ci/run; exits non-zero with the combinations that fail.
# Usage: scripts/check_wheels.sh [requirements file]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
requirements="${1:-requirements.txt}"
versions=(3.11 3.12 3.13 3.14)
# Each platform as pip's --platform tags: glibc 2.17 to 2.34 on Linux, macOS 11 to 14.
declare -A platforms=(
  [linux-x86_64]="manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64"
  [linux-aarch64]="manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_28_aarch64 manylinux_2_34_aarch64"
  [macos-arm64]="macosx_11_0_arm64 macosx_14_0_arm64"
)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

check() {  # version platform-name: one dry-run resolution, output kept on failure
  local version="$1" name="$2" args=()
  for tag in ${platforms[$name]}; do args+=(--platform "$tag"); done
  if python -m pip install --dry-run --ignore-installed --quiet --disable-pip-version-check \
      --only-binary=:all: --implementation cp --python-version "$version" "${args[@]}" \
      --target "$work/target-$version-$name" -r "$requirements" \
      >"$work/$version-$name.log" 2>&1; then
    echo "ok    CPython $version on $name"
  else
    echo "FAIL  CPython $version on $name"
    grep -v "is ignored: it is neither" "$work/$version-$name.log" | tail -n 5 | sed 's/^/      /'
    return 1
  fi
}

pids=() failed=0
for version in "${versions[@]}"; do
  for name in "${!platforms[@]}"; do
    check "$version" "$name" &
    pids+=($!)
    # A few at a time: each is network-bound, not CPU-bound.
    if [ "${#pids[@]}" -ge 4 ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
  done
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" -ne 0 ]; then
  echo "Some requirements have no binary wheel for a supported Python and platform." >&2
  exit 1
fi
echo "Every requirement has a binary wheel for CPython ${versions[*]} on ${!platforms[*]}."
