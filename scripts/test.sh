#!/usr/bin/env bash
# Installs what kghost needs, builds it, and runs every test: the optimised build, each
# libFuzzer target for a bounded time (FUZZ_SECONDS in total, default 60), then the ASan+UBSan
# build.
# Usage: scripts/test.sh [--no-sanitizers]   (skips the ASan build and the fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
jobs=$(nproc)

run_preset() {
  local preset=$1
  echo "== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "== $preset: tests"
  ctest --preset "$preset" -j "$jobs"
}

run_preset release
if [ "${1:-}" != "--no-sanitizers" ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-60} s in total)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
  run_preset asan
fi
