#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build/fuzz and runs each for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60]. Exit non-zero on a finding (the
# crashing input is left in build/fuzz/findings/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKG_BUILD_TESTS=ON >/dev/null
cmake --build build/fuzz --target stripe_signature_fuzz
mkdir -p build/fuzz/findings build/fuzz/corpus/stripe_signature
# New inputs go to build/fuzz/corpus (the seed corpus in the tree stays read-only).
build/fuzz/bin/stripe_signature_fuzz -max_total_time="$seconds" -max_len=4096 \
  -artifact_prefix=build/fuzz/findings/ \
  build/fuzz/corpus/stripe_signature tests/fuzz/corpus/stripe_signature
