#!/usr/bin/env bash
# streaming benchmark on loopback: a real nats-server -js, kghost (release) with the streaming
# plugin and the header-auth test fixture (X-Test-Tenant) so no API-key plugin is in the way.
#   1. publish rate: wrk -c CONNS POSTs /api/v1/streams/bench/events (each answered from its
#      JetStream ack), and JetStream's own count of stored messages per second
#   2. fan-out: 1 wrk connection publishing, FANOUT SSE clients, events/s delivered
#   3. latency: 1,000 msg/s from one publisher, FANOUT SSE clients, publish->SSE p50/p99
#   bench/run_streaming_bench.sh [build-dir]   (default build/streaming-rel; build kghost,
#                                               kg_streaming and kg_test_auth there first)
# Knobs: DUR=10s CONNS=64 FANOUT=100 RATE=1000 LAT_S=10
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build/streaming-rel}")
DUR=${DUR:-10s} CONNS=${CONNS:-64} FANOUT=${FANOUT:-100} RATE=${RATE:-1000} LAT_S=${LAT_S:-10}
WORK=$(mktemp -d /tmp/kghost-streaming-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
published() { curl -s "http://127.0.0.1:$KG_PORT/test/metrics" | awk '$1=="kgents_nats_published_total"{print $2}'; }

NATS_PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
pids+=($!)
KG_PORT=$(free_port)
cat >"$WORK/kghost.toml" <<TOML
log_level = "warn"
plugin_dir = "$BUILD/bin/plugins"
data_dir = "$WORK/data"
[server]
threads = 2
[[plugins]]
name = "test_auth"
path = "$BUILD/bin/test-plugins/kg_test_auth.so"
[[plugins]]
name = "streaming"
[plugins.config]
servers = "nats://127.0.0.1:$NATS_PORT"
fallback_capacity = 100000
TOML
"$BUILD/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$KG_PORT" 2>"$WORK/kghost.log" &
pids+=($!)
wait_http "http://127.0.0.1:$KG_PORT/health/live"
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$KG_PORT/health" | grep -q '"mode":"jetstream"' && break; sleep 0.05; done

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"type":"bench","payload":"0123456789abcdef0123456789abcdef"}'
wrk.headers["X-Test-Tenant"] = "bench"
wrk.headers["Content-Type"] = "application/json"
LUA

echo "== 1. publish rate: wrk -t2 -c$CONNS -d$DUR POST /api/v1/streams/bench/events (202 after the JetStream ack)"
before=$(published); t0=$(date +%s.%N)
wrk -t2 -c"$CONNS" -d"$DUR" --latency -s "$WORK/post.lua" "http://127.0.0.1:$KG_PORT/api/v1/streams/bench/events" | grep -E "Requests/sec|50%|99%|Non-2xx"
after=$(published); t1=$(date +%s.%N)
python3 -c "print(f'acked by JetStream: {($after-$before)/($t1-$t0):.0f} msg/s ({$after-$before:.0f} msgs)')"

echo "== 2. fan-out: 1 publisher (wrk -c1), $FANOUT SSE clients"
rm -f /tmp/kg-sse-ready
python3 bench/streaming_bench.py fanout "$KG_PORT" "$FANOUT" 10 &
SSE=$!
for _ in $(seq 1 600); do [ -f /tmp/kg-sse-ready ] && break; sleep 0.05; done
wrk -t1 -c1 -d8s -s "$WORK/post.lua" "http://127.0.0.1:$KG_PORT/api/v1/streams/bench/events" | grep -E "Requests/sec"
wait $SSE
curl -s "http://127.0.0.1:$KG_PORT/test/metrics" | grep -E "^kgents_streaming_sse_slow_disconnects_total"

echo "== 3. latency at $RATE msg/s, $FANOUT SSE clients"
python3 bench/streaming_bench.py latency "$KG_PORT" "$FANOUT" "$RATE" "$LAT_S"
