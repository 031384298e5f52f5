#!/usr/bin/env bash
# billing overhead and flusher rate.
#  1. wrk on GET /api/v1/health (kg_dev_bob: devkeys + auth) against a host without billing and
#     one with billing on (openmeter sink, the test suite's local receiver), in the same run,
#     alternating rounds; reports the median ratio (target >= 0.9).
#  2. Flusher rate: with the receiver down, wrk fills the spool; then the receiver comes back and
#     the time until the host reports nothing buffered gives events/s sent (target >= 50,000).
#     The spool holds only the backlog made in step 2 (its depth is bounded by it).
# Usage: bench/run_billing_bench.sh [DURATION] [CONNECTIONS] [ROUNDS]   (default 10s, 50, 3)
#        KG_BENCH_NO_BUILD=1 skips the build; KG_BENCH_BUILD=DIR picks the build dir
#        (default build/release); KG_BENCH_BATCH=N sets billing's batch_size (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10s}"
CONNS="${2:-50}"
ROUNDS="${3:-3}"
BUILD="${KG_BENCH_BUILD:-build/release}"
BATCH="${KG_BENCH_BATCH:-100}"
if [[ -z ${KG_BENCH_NO_BUILD:-} ]]; then
  cmake --build "$BUILD" --target kghost kg_auth kg_devkeys kg_billing -j2 >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

OM_PORT=$(free_port)
OM_CTL=$(free_port)
python3 tests/plugins/billing/openmeter_receiver.py "$OM_PORT" "$OM_CTL" om_bench_key \
  >"$DIR/receiver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$OM_CTL/stats" >/dev/null && break; sleep 0.05; done
om_mode() { curl -sf -X POST --data "$1" "http://127.0.0.1:$OM_CTL/mode" >/dev/null; }

# $1: off|on
write_config() {
  cat >"$DIR/$1.toml" <<TOML
plugin_dir = "$PWD/$BUILD/bin/plugins"
mode = "dev"
log_level = "warn"
data_dir = "$DIR/data-$1"
[server]
threads = 1
[store]
backend = "memory"
[[plugins]]
name = "auth"
[plugins.config.tiers.PRO]
limit = 1000000000
[[plugins]]
name = "devkeys"
enabled = true
TOML
  if [[ $1 == on ]]; then
    cat >>"$DIR/$1.toml" <<TOML
[[plugins]]
name = "billing"
[plugins.config]
sink = "openmeter"
url = "http://127.0.0.1:$OM_PORT"
api_key = "om_bench_key"
batch_size = $BATCH
backoff_initial_ms = 20
backoff_max_ms = 200
max_spool_bytes = 1073741824
TOML
  fi
}

start_host() {  # $1: off|on; sets PORT
  write_config "$1"
  PORT=$(free_port)
  "$BUILD/bin/kghost" --config "$DIR/$1.toml" --listen "127.0.0.1:$PORT" >"$DIR/kghost-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.05; done
}

rps() {
  local out
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" -H 'X-API-Key: kg_dev_bob' "$1")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

buffered() {
  curl -s "http://127.0.0.1:$1/health" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["plugins"]["billing"]["buffered"])'
}

echo "== $(nproc) cores, wrk -t1 -c$CONNS -d$DURATION, kghost threads = 1, batch_size $BATCH"
start_host off
OFF=$PORT
start_host on
ON=$PORT
ratios=()
for round in $(seq "$ROUNDS"); do
  off=$(rps "http://127.0.0.1:$OFF/api/v1/health")
  on=$(rps "http://127.0.0.1:$ON/api/v1/health")
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')
  ratios+=("$ratio")
  printf 'round %d  billing off %9.0f req/s   billing on (openmeter sink) %9.0f req/s   ratio %s\n' \
    "$round" "$off" "$on" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median ratio billing on / off: $median (target >= 0.90)"
for _ in $(seq 200); do [[ $(buffered "$ON") == 0 ]] && break; sleep 0.05; done

echo "== flusher rate"
om_mode down
rps "http://127.0.0.1:$ON/api/v1/health" >/dev/null
sleep 0.3  # the last batches close and are spooled
backlog=$(buffered "$ON")
before=$(curl -s "http://127.0.0.1:$OM_CTL/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique"])')
start=$(date +%s.%N)
om_mode ok
for _ in $(seq 6000); do [[ $(buffered "$ON") == 0 ]] && break; sleep 0.01; done
end=$(date +%s.%N)
after=$(curl -s "http://127.0.0.1:$OM_CTL/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique"])')
awk -v n="$backlog" -v s="$start" -v e="$end" -v got="$((after - before))" 'BEGIN {
  printf "backlog %d events drained in %.2f s: %.0f events/s (target >= 50000); receiver got %d new ids\n",
    n, e - s, n / (e - s), got }'
