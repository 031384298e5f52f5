#!/usr/bin/env bash
# Store incr throughput: memory backend (1 and 2 threads), the Redis backend (async, many calls
# in flight, over 10000 keys and on one hot key) and redis-benchmark against the same
# redis-server, started here on a free port.
# Usage: bench/run_store_bench.sh [SECONDS]   (builds the release preset's store_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-3}"
BIN=build/release/bin/store_bench
if [[ ! -d build/release ]]; then cmake --preset release >/dev/null; fi
cmake --build --preset release --target store_bench -j2 >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$DIR" \
  --daemonize no >"$DIR/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "== $(nproc) cores, $(redis-server --version | cut -d' ' -f3), ${SECONDS_PER_RUN}s per run"
"$BIN" --seconds "$SECONDS_PER_RUN" --redis "redis://127.0.0.1:$PORT"
echo "== one hot key (every call on one key: the provider coalesces each batch's increments)"
"$BIN" --seconds "$SECONDS_PER_RUN" --redis "redis://127.0.0.1:$PORT" --keys 1 | grep '^redis'
echo "== redis-benchmark -t incr -q (50 clients, no pipelining)"
redis-benchmark -p "$PORT" -t incr -n 200000 -q | tr '\r' '\n' | grep -v '^$' | tail -1
echo "== redis-benchmark -t incr -q -P 16 (pipelined, for reference)"
redis-benchmark -p "$PORT" -t incr -n 1000000 -P 16 -q | tr '\r' '\n' | grep -v '^$' | tail -1
