#!/usr/bin/env bash
# Stripe webhook benchmark: signed POST /webhooks/stripe through the whole path (rate limit,
# signature, JSON, idempotency lookup, durable fsync'd append, idempotency mark, 200) with the
# memory store and with a real redis-server. Unique event ids (bench/gen_stripe_requests.py +
# the peers' stripe_webhook.lua), so every 200 is a durably acknowledged new event.
#   bench/run_webhooks_bench.sh [build-dir]     (default build/webhooks-rel; Release build)
# Knobs: DUR=10s CONNS=50 THREADS=1 N=400000 REPS=1 PEERS=../shared/peers (beside the repo)
#        STORES="memory redis" FASTAPI=1 (also run the FastAPI peer, same load, in each round)
#        PERF=FILE (perf record -g of kghost during the measured run, into FILE)
# Each kghost line ends with cpu=<busiest threads, % of a core> <kghost CPU us per request>
# (every thread's utime+stime over the measured run / requests): the figure that barely moves
# with the machine's load, where req/s and p99 do. threads= lists each busy thread's CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build/webhooks-rel}")
DUR=${DUR:-10s} CONNS=${CONNS:-50} THREADS=${THREADS:-1} N=${N:-400000} REPS=${REPS:-1}
PEERS=${PEERS:-$(realpath ../shared/peers)}
source bench/bench_lib.sh
bench_scratch kghost-whbench

# wrk, given DUR plus 5 minutes: the script's Lua init (every signed request formatted up
# front) grows slow with large N, and once never finished; a stuck run then ends the bench with
# a message instead of hanging it.
wrk_bounded() {
  timeout "$((${DUR%s} + 300))" wrk "$@" || { echo "wrk did not finish within DUR + 300 s" >&2; return 1; }
}

run_one() {  # run_one STORE REP
  local store=$1 rep=$2 port data redis_port="" redis_pid="" kg_pid
  port=$(free_port)
  data="$WORK/data-$store-$rep"
  mkdir -p "$data"
  local store_cfg='backend = "memory"'
  if [[ $store == redis ]]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
    redis_pid=$!; pids+=("$redis_pid")
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    store_cfg="backend = \"redis\"
redis_url = \"redis://127.0.0.1:$redis_port\""
  fi
  cat >"$WORK/kghost.toml" <<TOML
log_level = "warn"
plugin_dir = "$BUILD/bin/plugins"
data_dir = "$data"
[store]
$store_cfg
[[plugins]]
name = "webhooks"
[plugins.config]
secrets = "whsec_test_secret"
journal_dir = "$data/webhooks"
rate_limit = 0
TOML
  "$BUILD/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$port" 2>"$WORK/kghost.log" &
  kg_pid=$!; pids+=("$kg_pid")
  wait_http "http://127.0.0.1:$port/webhooks/stripe/health" || { cat "$WORK/kghost.log"; exit 1; }
  # Fresh signatures (300 s tolerance) and ids for every run.
  python3 bench/gen_stripe_requests.py --n "$N" --prefix "b${store}${rep}$$" --out "$WORK/reqs.txt"
  local out perf_pid=""
  thread_ticks "$kg_pid" >"$WORK/ticks.before"
  if [[ -n ${PERF:-} ]]; then
    perf record -g -o "$PERF" -p "$kg_pid" -- sleep "${DUR%s}" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  out=$(wrk_bounded -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$PEERS/stripe_webhook.lua" \
    "http://127.0.0.1:$port" -- "$WORK/reqs.txt" "$THREADS")
  thread_ticks "$kg_pid" >"$WORK/ticks.after"
  [[ -n $perf_pid ]] && wait "$perf_pid" 2>/dev/null || true
  local rps p50 p99 non2xx health cpu threads
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  cpu=$(cpu_use "$WORK/ticks.before" "$WORK/ticks.after" "$(wrk_secs "$out")" "$rps")
  threads=$(thread_seconds "$WORK/ticks.before" "$WORK/ticks.after")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  past=$(awk -F': ' '/requests_past_end_of_file/ {print $2}' <<<"$out")
  health=$(curl -s "http://127.0.0.1:$port/webhooks/stripe/health")
  echo "store=$store rep=$rep req/s=$rps p50=$p50 p99=$p99 non2xx=$non2xx dups_sent=$past cpu=${cpu}us/req threads=$threads health=$health"
  kill "$kg_pid"; wait "$kg_pid" 2>/dev/null || true
  [[ -n $redis_pid ]] && { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; }
  return 0
}

# The measured run's length in seconds, from wrk's "... requests in 8.01s" line.
wrk_secs() { awk '/requests in/ {sub(/s,?$/, "", $4); print $4}' <<<"$1"; }
# Per thread (name from /proc/<tid>/comm): CPU seconds used between two thread_ticks snapshots.
thread_seconds() {  # thread_seconds BEFORE AFTER
  awk -v hz="$(getconf CLK_TCK)" 'NR==FNR {b[$1]=$2; next} {d=$2-b[$1]; if (d > 0) {
      f=$1; sub(/stat$/, "comm", f); getline n <f; close(f); printf "%s:%.2f,", n, d/hz}}' "$1" "$2"
}

run_fastapi() {  # run_fastapi REP: the peer (uvicorn, httptools+uvloop, 2 workers), same load
  local rep=$1 port pid
  port=$(free_port)
  /usr/bin/python3 -m uvicorn fastapi_app:app --app-dir "$PEERS" --host 127.0.0.1 --port "$port" \
    --workers 2 --log-level warning --loop uvloop --http httptools >"$WORK/uvicorn.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_http "http://127.0.0.1:$port/health" || { cat "$WORK/uvicorn.log"; return 0; }
  sleep 2  # every worker imported the app
  python3 bench/gen_stripe_requests.py --n "$N" --prefix "f${rep}$$" --out "$WORK/reqs.txt"
  local out
  out=$(wrk_bounded -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$PEERS/stripe_webhook.lua" \
    "http://127.0.0.1:$port" -- "$WORK/reqs.txt" "$THREADS")
  echo "fastapi rep=$rep req/s=$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "p50=$(awk '$1=="50%" {print $2}' <<<"$out") p99=$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "kghost webhooks bench: wrk -t$THREADS -c$CONNS -d$DUR, $(nproc) cores, build $BUILD"
for rep in $(seq 1 "$REPS"); do
  run_one memory "$rep"
  [[ ${STORES:-memory redis} == *redis* ]] && run_one redis "$rep"
  [[ -n ${FASTAPI:-} ]] && run_fastapi "$rep"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
if [[ -f $PEERS/RESULTS.md ]]; then
  echo "FastAPI (peers' RESULTS.md, POST /webhooks/stripe, in-memory set, nothing durable):"
  grep -E '^\| fastapi \| POST /webhooks/stripe' "$PEERS/RESULTS.md" | awk -F'|' '{print "  " $4 " c=" $5 ": " $6 " req/s"}'
fi
