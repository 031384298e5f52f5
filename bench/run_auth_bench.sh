#!/usr/bin/env bash
# auth + devkeys overhead: wrk on GET /api/v1/health (X-API-Key: kg_dev_bob, so devkeys
# authenticates and auth rate-limits with one store incr) against the bare public /hello route,
# with the memory store and with the Redis store (redis-server started here), kghost with its
# default I/O threads and with server.threads = 1, all in one run: ROUNDS interleaved rounds,
# each running every configuration's bare and authenticated route back to back; the ratio is
# the median of the rounds' ratios, which keeps a noisy (shared) machine from skewing it.
# Usage: bench/run_auth_bench.sh [DURATION] [CONNECTIONS] [ROUNDS]   (default 10s, 50, 3)
#   BUILD=build/release (the release preset's build, built here unless KG_BENCH_NO_BUILD=1)
#   THREADS="0 1"       (server.threads values to measure; 0 = one I/O thread per core)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bench_lib.sh
DUR="${1:-10s}" CONNS="${2:-50}" ROUNDS="${3:-3}"
BUILD=${BUILD:-build/release}
THREADS=${THREADS:-0 1}
if [[ -z ${KG_BENCH_NO_BUILD:-} ]]; then
  [[ -d $BUILD ]] || cmake --preset release >/dev/null
  cmake --build "$BUILD" --target kghost kg_auth kg_devkeys kg_hello kg_store_redis -j2 >/dev/null
fi
bench_scratch kghost-auth-bench

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" \
  --daemonize no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; pids+=("$REDIS_PID")
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

# start_kghost NAME STORE THREADS: sets port_NAME and pid_NAME. The PRO limit is raised so the
# bench measures 200s, not 429s.
start_kghost() {
  local name=$1 store="backend = \"memory\"" port
  [[ $2 == redis ]] && store="backend = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
  cat >"$WORK/$name.toml" <<TOML
plugin_dir = "$(cd "$BUILD" && pwd)/bin/plugins"
mode = "dev"
log_level = "warn"
data_dir = "$WORK/data-$name"
[server]
threads = $3
[store]
$store
[[plugins]]
name = "hello"
[[plugins]]
name = "auth"
[plugins.config.tiers.PRO]
limit = 1000000000
[[plugins]]
name = "devkeys"
enabled = true
TOML
  launch_kghost "$BUILD" "$name"
}

configs=()
for store in memory redis; do
  for t in $THREADS; do configs+=("${store}_t$t"); start_kghost "${store}_t$t" "$store" "$t"; done
done

echo "# $(date -u '+%F %T UTC'), $(nproc) cores, wrk -t1 -c$CONNS -d$DUR, $ROUNDS rounds, redis $(redis-server --version | cut -d' ' -f3)"
echo "# threads 0 = one I/O thread per core; columns: name req/s p50_ms p99_ms load1 busiest-threads-cpu"
for round in $(seq "$ROUNDS"); do
  for c in "${configs[@]}"; do
    port_var="port_$c" pid_var="pid_$c"
    SERVER_PIDS="${!pid_var}"
    [[ $c == redis_* ]] && SERVER_PIDS="${!pid_var} $REDIS_PID"
    run "$c/hello" "http://127.0.0.1:${!port_var}/hello"
    run "$c/auth" "http://127.0.0.1:${!port_var}/api/v1/health" -H 'X-API-Key: kg_dev_bob'
    bare=$(tail -2 "$WORK/results" | head -1 | cut -d' ' -f2)
    authed=$(tail -1 "$WORK/results" | cut -d' ' -f2)
    echo "$c/ratio $(ratio "$authed" "$bare")" >>"$WORK/results"
  done
done

echo "# medians over $ROUNDS rounds"
for c in "${configs[@]}"; do summary "$c/hello" "$c/auth"; done
for c in "${configs[@]}"; do
  printf '%-10s auth/bare median ratio %s  (rounds: %s)\n' "$c" "$(med_of "$c/ratio" 2)" \
    "$(awk -v s="$c/ratio" '$1==s{printf "%s ", $2}' "$WORK/results")"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
