#!/usr/bin/env bash
# Stripe webhook processing under sustained ingest, with the Redis store (the production
# setting): wrk sends signed, unique events as fast as the host accepts them for DUR seconds
# while /webhooks/stripe/health is sampled every second. Reports the ingest rate, non-2xx
# answers (a 503 means the backlog filled), the largest queue depth seen, and the processed
# events/s over the run and until the backlog drained. Builds are run in interleaved rounds.
#   bench/run_webhooks_processing_bench.sh BUILD_DIR [BUILD_DIR...]   (each with bin/kghost)
# Knobs: DUR=60 CONNS=50 THREADS=1 N=1500000 REPS=1 PEERS=../shared/peers (beside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-60} CONNS=${CONNS:-50} THREADS=${THREADS:-1} N=${N:-1500000} REPS=${REPS:-1}
PEERS=${PEERS:-$(realpath ../shared/peers)}
source bench/bench_lib.sh
bench_scratch kghost-whproc
# A number from the health JSON on stdin, by bash alone: the sampler runs every second during
# the load, and a python3 per field (through pyenv's shims) took about a tenth of the 2 cores.
field() {
  local json
  json=$(</dev/stdin)
  [[ $json =~ \"$1\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

run_one() {  # run_one BUILD REP
  local build=$1 rep=$2 port redis_port data kg_pid redis_pid
  port=$(free_port); redis_port=$(free_port); data="$WORK/data-$rep-$RANDOM"
  mkdir -p "$data"
  redis-server --port "$redis_port" --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
  redis_pid=$!; pids+=("$redis_pid")
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  cat >"$WORK/kghost.toml" <<TOML
log_level = "warn"
plugin_dir = "$build/bin/plugins"
data_dir = "$data"
[store]
backend = "redis"
redis_url = "redis://127.0.0.1:$redis_port"
[[plugins]]
name = "webhooks"
[plugins.config]
secrets = "whsec_test_secret"
rate_limit = 0
TOML
  "$build/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$port" 2>"$WORK/kghost.log" &
  kg_pid=$!; pids+=("$kg_pid")
  local url="http://127.0.0.1:$port/webhooks/stripe/health"
  wait_http "$url" || { cat "$WORK/kghost.log"; exit 1; }
  python3 bench/gen_stripe_requests.py --n "$N" --prefix "p${rep}$RANDOM$$" --out "$WORK/reqs.txt"
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -s "$PEERS/stripe_webhook.lua" \
    "http://127.0.0.1:$port" -- "$WORK/reqs.txt" "$THREADS" >"$WORK/wrk.out" &
  # Rates from the health samples: from the first processed event to the end of the load.
  local wrk_pid=$! max_depth=0 h depth p t_first="" p_first=0 t_end p_end
  while kill -0 "$wrk_pid" 2>/dev/null; do
    h=$(curl -s "$url"); depth=$(field queue_depth <<<"$h"); p=$(field processed <<<"$h")
    (( depth > max_depth )) && max_depth=$depth
    if [[ -z $t_first && $p -gt 0 ]]; then t_first=$(date +%s.%N); p_first=$p; fi
    sleep 1
  done
  wait "$wrk_pid" || true
  t_end=$(date +%s.%N); p_end=$(curl -s "$url" | field processed)
  local t_drain=$t_end
  for _ in $(seq 1 600); do  # how long the backlog left at the end takes
    h=$(curl -s "$url"); [[ $(field queue_depth <<<"$h") == 0 ]] && break; sleep 0.2
  done
  t_drain=$(date +%s.%N)
  local rps non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out"); non2xx=${non2xx:-0}
  echo "build=$build rep=$rep ingest_req/s=$rps non2xx=$non2xx max_depth=$max_depth" \
    "processed/s=$(python3 -c "print(round(($p_end-$p_first)/($t_end-${t_first:-$t_end}+1e-9)))")" \
    "processed=$(field processed <<<"$h") drain_s=$(python3 -c "print(round($t_drain-$t_end,1))")" \
    "load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
  kill "$kg_pid"; wait "$kg_pid" 2>/dev/null || true
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
}

echo "kghost webhooks processing bench: redis store, wrk -t$THREADS -c$CONNS -d${DUR}s, $(nproc) cores"
for rep in $(seq 1 "$REPS"); do
  for b in "$@"; do run_one "$(realpath "$b")" "$rep"; done
done
