#!/usr/bin/env bash
# kghost's authenticated route against the OpenResty way of doing the same work, in one run:
# GET /api/v1/health with X-API-Key: kg_dev_bob on kghost (devkeys + auth, PRO limit raised,
# default I/O threads) and on nginx + Lua (bench/openresty-auth.conf.in: key table,
# lua_shared_dict counter, the same headers and body). The peer counts in shared memory, so
# kghost's memory store is the like-for-like row; the Redis store row is there for reference.
# wrk -t1 -cCONNS -dDUR --latency, REPS interleaved rounds, 2 s warm-up each, medians.
#   bench/run_openresty_bench.sh [build-dir]      (default build/release; build it first)
# Knobs: DUR=10s REPS=3 CONNS=50; BASE=<another build dir> adds that build's memory-store row
# (before/after comparisons). Needs libnginx-mod-http-lua (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bench_lib.sh
BUILD=${1:-build/release}
DUR=${DUR:-10s} REPS=${REPS:-3} CONNS=${CONNS:-50} BASE=${BASE:-}
WORK=$(mktemp -d /tmp/kghost-openresty-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
[[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] ||
  { echo "the nginx Lua module is missing: run scripts/install-deps.sh (libnginx-mod-http-lua)" >&2; exit 1; }

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" \
  --daemonize no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; pids+=("$REDIS_PID")
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

OR_PORT=$(free_port)
mkdir -p "$WORK/openresty"
sed "s#@DIR@#$WORK/openresty#g; s#@PORT@#$OR_PORT#g" bench/openresty-auth.conf.in >"$WORK/openresty/nginx.conf"
nginx -p "$WORK/openresty/" -e "$WORK/openresty/error.log" -c "$WORK/openresty/nginx.conf" -g 'daemon off;' &
OR_PID=$!; pids+=("$OR_PID")
wait_http "http://127.0.0.1:$OR_PORT/api/v1/health" -H 'X-API-Key: kg_dev_bob'

# start_kghost NAME BUILD STORE: sets port_NAME and pid_NAME.
start_kghost() {
  local name=$1 build=$2 store="backend = \"memory\"" port
  [[ $3 == redis ]] && store="backend = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
  cat >"$WORK/$name.toml" <<TOML
plugin_dir = "$(cd "$build" && pwd)/bin/plugins"
mode = "dev"
log_level = "warn"
data_dir = "$WORK/data-$name"
[store]
$store
[[plugins]]
name = "auth"
[plugins.config.tiers.PRO]
limit = 1000000000
[[plugins]]
name = "devkeys"
enabled = true
TOML
  launch_kghost "$build" "$name"
}
names=(kghost_memory kghost_redis)
start_kghost kghost_memory "$BUILD" memory
start_kghost kghost_redis "$BUILD" redis
if [[ -n $BASE ]]; then names+=(base_memory); start_kghost base_memory "$BASE" memory; fi

echo "# $(date -u '+%F %T UTC'), $(nproc) cores, wrk -t1 -c$CONNS -d$DUR, $REPS interleaved rounds, $(nginx -v 2>&1 | cut -d' ' -f3)"
echo "# columns: name req/s p50_ms p99_ms load1 busiest-threads-cpu server-cpu-us/req"
for r in $(seq 1 "$REPS"); do
  SERVER_PIDS=$OR_PID run openresty "http://127.0.0.1:$OR_PORT/api/v1/health" -H 'X-API-Key: kg_dev_bob'
  for n in "${names[@]}"; do
    port_var="port_$n" pid_var="pid_$n"
    SERVER_PIDS="${!pid_var}"
    [[ $n == *redis ]] && SERVER_PIDS="${!pid_var} $REDIS_PID"
    run "$n" "http://127.0.0.1:${!port_var}/api/v1/health" -H 'X-API-Key: kg_dev_bob'
  done
done

echo "# medians over $REPS rounds"
summary openresty "${names[@]}"
or_rps=$(med_of openresty 2) or_p99=$(med_of openresty 4)
for n in "${names[@]}"; do
  printf '%-14s vs openresty: req/s %s x, p99 %s x\n' "$n" "$(ratio "$(med_of "$n" 2)" "$or_rps")" \
    "$(ratio "$(med_of "$n" 4)" "$or_p99")"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
