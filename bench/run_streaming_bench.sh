#!/usr/bin/env bash
# streaming benchmark on loopback: a real nats-server -js, kghost (release) with the streaming
# plugin and the header-auth test fixture (X-Test-Tenant) so no API-key plugin is in the way.
#   1. publish rate: wrk -c CONNS POSTs /api/v1/streams/bench/events (each answered from its
#      JetStream ack), and the plugin's count of JetStream acks per second
#   2. latency: FANOUT SSE clients, RATE msg/s published, publish->SSE p50/p99 (bench/sse_latency)
#   3. fan-out (FANOUT_RUN=1): 1 wrk connection publishing, FANOUT SSE clients, events/s delivered
#
#   bench/run_streaming_bench.sh [build-dir...]   (default build/release; each needs bin/kghost,
#                                                  bin/plugins/kg_streaming.so and
#                                                  bin/test-plugins/kg_test_auth.so)
# Several build dirs (e.g. a build of main, then this branch) are measured side by side:
# ROUNDS rounds, each build once per round in turn, each on a fresh nats-server and kghost;
# the summary gives every round and the median.
# Knobs: ROUNDS=3 DUR=10s CONNS=64 THREADS=2 FANOUT=100 RATE=1000 LAT_S=10 FANOUT_RUN=0
#        SSE_LATENCY=path of the sse_latency tool (default: the first build dir that has it)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=()
for b in "${@:-build/release}"; do BUILDS+=("$(realpath "$b")"); done
ROUNDS=${ROUNDS:-3} DUR=${DUR:-10s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
FANOUT=${FANOUT:-100} RATE=${RATE:-1000} LAT_S=${LAT_S:-10} FANOUT_RUN=${FANOUT_RUN:-0}
if [ -z "${SSE_LATENCY:-}" ]; then
  for b in "${BUILDS[@]}"; do [ -x "$b/bin/sse_latency" ] && SSE_LATENCY="$b/bin/sse_latency" && break; done
fi
[ -x "${SSE_LATENCY:-}" ] || { echo "no sse_latency tool: build the sse_latency target or set SSE_LATENCY" >&2; exit 1; }
WORK=$(mktemp -d /tmp/kghost-streaming-bench.XXXXXX)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
published() { curl -s "http://127.0.0.1:$KG_PORT/test/metrics" | awk '$1=="kgents_nats_published_total"{print $2}'; }

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"type":"bench","payload":"0123456789abcdef0123456789abcdef"}'
wrk.headers["X-Test-Tenant"] = "bench"
wrk.headers["Content-Type"] = "application/json"
LUA

# Starts nats-server and kghost of build $1 (fresh store dirs); sets KG_PORT.
start_pair() {
  local build=$1 run=$WORK/run$RANDOM
  mkdir -p "$run"
  NATS_PORT=$(free_port)
  nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$run/js" >"$run/nats.log" 2>&1 &
  NATS_PID=$!
  pids+=($!)
  KG_PORT=$(free_port)
  cat >"$run/kghost.toml" <<TOML
log_level = "warn"
plugin_dir = "$build/bin/plugins"
data_dir = "$run/data"
[server]
threads = 2
[[plugins]]
name = "test_auth"
path = "$build/bin/test-plugins/kg_test_auth.so"
[[plugins]]
name = "streaming"
[plugins.config]
servers = "nats://127.0.0.1:$NATS_PORT"
fallback_capacity = 100000
TOML
  "$build/bin/kghost" --config "$run/kghost.toml" --listen "127.0.0.1:$KG_PORT" 2>"$run/kghost.log" &
  KG_PID=$!
  pids+=($!)
  wait_http "http://127.0.0.1:$KG_PORT/health/live"
  for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$KG_PORT/health" | grep -q '"mode":"jetstream"' && break; sleep 0.05; done
}

declare -A RATE_OF LAT_OF CPU_OF
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!BUILDS[@]}"; do
    build=${BUILDS[$i]}
    echo "== round $round, build $i ($build), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    start_pair "$build"
    k0=$(cpu_ticks "$KG_PID"); n0=$(cpu_ticks "$NATS_PID")
    before=$(published); t0=$(date +%s.%N)
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$WORK/post.lua" "http://127.0.0.1:$KG_PORT/api/v1/streams/bench/events")
    after=$(published); t1=$(date +%s.%N)
    k1=$(cpu_ticks "$KG_PID"); n1=$(cpu_ticks "$NATS_PID")
    echo "$out" | grep -E "Requests/sec|  50%|  99%|Non-2xx" | sed 's/^/   /'
    acked=$(python3 -c "print(f'{($after-$before)/($t1-$t0):.0f}')")
    # CPU time per acked message (user + system, both processes): what load does not change.
    cpu=$(python3 -c "t=$(getconf CLK_TCK); n=max(1,$after-$before); print(f'kghost {($k1-$k0)/t/n*1e6:.1f} us, nats-server {($n1-$n0)/t/n*1e6:.1f} us')")
    echo "   publish: wrk -t$THREADS -c$CONNS: $acked msg/s acked by JetStream; CPU per message: $cpu"
    CPU_OF[$i]+="$(python3 -c "t=$(getconf CLK_TCK); n=max(1,$after-$before); print(f'{($k1-$k0)/t/n*1e6:.1f}/{($n1-$n0)/t/n*1e6:.1f}')") "
    RATE_OF[$i]+="$acked "
    lat=$("$SSE_LATENCY" "$KG_PORT" "$FANOUT" "$RATE" "$LAT_S")
    echo "   $lat"
    LAT_OF[$i]+="$(echo "$lat" | sed -E 's/.*p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\1\/\2/') "
    if [ "$FANOUT_RUN" = 1 ]; then
      rm -f /tmp/kg-sse-ready
      python3 bench/streaming_bench.py fanout "$KG_PORT" "$FANOUT" 10 &
      sse=$!
      for _ in $(seq 1 600); do [ -f /tmp/kg-sse-ready ] && break; sleep 0.05; done
      wrk -t1 -c1 -d8s -s "$WORK/post.lua" "http://127.0.0.1:$KG_PORT/api/v1/streams/bench/events" | grep -E "Requests/sec" | sed 's/^/   /'
      wait $sse
    fi
    stop_all
  done
done

echo "== summary (publish msg/s acked per round | median; CPU us/msg kghost/nats per round; SSE latency p50/p99 ms per round | median p99)"
for i in "${!BUILDS[@]}"; do
  med=$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" ${RATE_OF[$i]})
  p99=$(python3 -c "import statistics,sys; print(statistics.median(float(a.split('/')[1]) for a in sys.argv[1:]))" ${LAT_OF[$i]})
  echo "build $i ${BUILDS[$i]}: ${RATE_OF[$i]}| $med msg/s; cpu ${CPU_OF[$i]}; ${LAT_OF[$i]}| p99 $p99 ms"
done
