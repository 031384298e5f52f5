#!/usr/bin/env bash
# auth + devkeys overhead: wrk on GET /api/v1/health (X-API-Key: kg_dev_bob, so devkeys
# authenticates and auth rate-limits with one store incr) against the bare public /hello route,
# in the same run, with the memory store and with the Redis store (redis-server started here).
# Usage: bench/run_auth_bench.sh [DURATION] [CONNECTIONS] [ROUNDS]   (default 10s, 50, 3)
# Each round runs the bare route then the authenticated one back to back; the ratio reported is
# the median of the rounds' ratios, which keeps a noisy (shared) machine from skewing it.
#        KG_BENCH_NO_BUILD=1 skips the (release) build step.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10s}"
CONNS="${2:-50}"
ROUNDS="${3:-3}"
BUILD=build/auth-rel
if [[ -z ${KG_BENCH_NO_BUILD:-} ]]; then  # set it to bench binaries built earlier as they are
  if [[ ! -d $BUILD ]]; then cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null; fi
  cmake --build $BUILD --target kghost kg_auth kg_devkeys kg_hello -j2 >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$DIR" \
  --daemonize no >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

# $1: memory|redis. The PRO limit is raised so the bench measures 200s, not 429s.
write_config() {
  local store="backend = \"memory\""
  [[ $1 == redis ]] && store="backend = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
  cat >"$DIR/$1.toml" <<TOML
plugin_dir = "$PWD/$BUILD/bin/plugins"
mode = "dev"
log_level = "warn"
data_dir = "$DIR/data-$1"
[server]
threads = 1
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
}

rps() {  # wrk's Requests/sec; fails the run on non-2xx answers
  local out
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

echo "== $(nproc) cores, wrk -t1 -c$CONNS -d$DURATION, kghost threads = 1, $(redis-server --version | cut -d' ' -f3)"
for store in memory redis; do
  write_config $store
  PORT=$(free_port)
  $BUILD/bin/kghost --config "$DIR/$store.toml" --listen "127.0.0.1:$PORT" >"$DIR/kghost-$store.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.05; done
  curl -sf -H 'X-API-Key: kg_dev_bob' "http://127.0.0.1:$PORT/api/v1/health" >/dev/null
  ratios=()
  for round in $(seq "$ROUNDS"); do
    bare=$(rps "http://127.0.0.1:$PORT/hello")
    authed=$(rps -H 'X-API-Key: kg_dev_bob' "http://127.0.0.1:$PORT/api/v1/health")
    ratio=$(awk -v a="$authed" -v b="$bare" 'BEGIN {printf "%.2f", a / b}')
    ratios+=("$ratio")
    printf '%-6s round %d  /hello %9.0f req/s   /api/v1/health (auth+devkeys) %9.0f req/s   ratio %s\n' \
      "$store" "$round" "$bare" "$authed" "$ratio"
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$store  median ratio $median"
done
