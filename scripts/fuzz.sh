#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build/fuzz and runs each for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS in total, default 60, shared evenly by the targets]. Exit
# non-zero on a finding (the crashing input is left in build/fuzz/findings/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(stripe_signature stripe_event)
per_target=$(( seconds / ${#targets[@]} ))
(( per_target > 0 )) || per_target=1
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKG_BUILD_TESTS=ON >/dev/null
cmake --build build/fuzz --target "${targets[@]/%/_fuzz}"
mkdir -p build/fuzz/findings
for t in "${targets[@]}"; do
  # New inputs go to build/fuzz/corpus (the seed corpus in the tree stays read-only).
  mkdir -p "build/fuzz/corpus/$t"
  "build/fuzz/bin/${t}_fuzz" -max_total_time="$per_target" -max_len=4096 \
    -artifact_prefix=build/fuzz/findings/ \
    "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t"
done
