#!/usr/bin/env bash
# Durable queue append throughput with 1, 8 and 64 concurrent appenders (each waits for its
# append to be durable before the next), the fsyncs/s behind them, then the same with a
# consumer acking concurrently. Builds nothing: build the release preset's queue_bench first
#   cmake --preset release && cmake --build --preset release --target queue_bench -j2
# Usage: bench/run_queue_bench.sh [BINARY] [SECONDS]   (default build/release/bin/queue_bench, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-build/release/bin/queue_bench}"
SECONDS_PER_RUN="${2:-3}"
if [[ ! -x "$BIN" ]]; then
  echo "no queue_bench at $BIN; build it first (see the top of this script)" >&2
  exit 1
fi
DIR="$(mktemp -d "${TMPDIR:-/tmp}/kghost-queue-bench.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT
echo "== $(nproc) cores, $(df -hT "$DIR" | awk 'NR==2 {print $2 " on " $1}'), ${SECONDS_PER_RUN}s per run"
"$BIN" --seconds "$SECONDS_PER_RUN" --dir "$DIR/append-only"
echo
"$BIN" --seconds "$SECONDS_PER_RUN" --dir "$DIR/with-consumer" --consume
