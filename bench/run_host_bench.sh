#!/usr/bin/env bash
# Host-core benchmark: kghost serving a plugin route through the router and one filter
# (GET /hello of the hello plugin) against nginx returning the same bytes, in one run, on
# loopback. wrk -t1 -c50 -d10s, REPS interleaved passes, median reported, ratios printed.
# kghost runs twice per pass: with its default of one I/O thread per core (like nginx's
# worker_processes auto), and with one I/O thread, which leaves wrk a core of its own.
#   bench/run_host_bench.sh [build-dir]      (default build/release; build it first)
# Knobs: DUR=10s REPS=3 CONNS=50
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
DUR=${DUR:-10s} REPS=${REPS:-3} CONNS=${CONNS:-50}
WORK=$(mktemp -d /tmp/kghost-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

start_nginx() {
  NGINX_PORT=$(free_port)
  mkdir -p "$WORK/nginx"
  sed "s#@DIR@#$WORK/nginx#g; s#@PORT@#$NGINX_PORT#g" bench/nginx.conf.in >"$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx/" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!; pids+=("$NGINX_PID")
  wait_http "http://127.0.0.1:$NGINX_PORT/hello"
}
start_kghost() {  # start_kghost THREADS (0: one per core)
  KG_PORT=$(free_port)
  cat >"$WORK/kghost.toml" <<TOML
log_level = "warn"
[server]
threads = $1
[[plugins]]
name = "hello"
TOML
  "$BUILD/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$KG_PORT" 2>"$WORK/kghost.log" &
  KG_PID=$!; pids+=("$KG_PID")
  wait_http "http://127.0.0.1:$KG_PORT/hello"
}
stop() { kill -"${2:-TERM}" "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# run NAME URL: one warm-up, one measured wrk run; appends "name rps p50_ms p99_ms" to results
run() {
  local name=$1 url=$2 out
  wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null 2>&1
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency "$url")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/{print}' <<<"$out" | tr '\n' ' ')
  echo "$name $rps $(to_ms "$p50") $(to_ms "$p99") ${errors:-}" | tee -a "$WORK/results"
}
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print v }'; }

echo "# $(date -u '+%F %T UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "# wrk -t1 -c$CONNS -d$DUR, $REPS interleaved passes; columns: server req/s p50_ms p99_ms"
for r in $(seq 1 "$REPS"); do
  start_nginx; run nginx "http://127.0.0.1:$NGINX_PORT/hello"; stop "$NGINX_PID" QUIT
  start_kghost 0; run kghost "http://127.0.0.1:$KG_PORT/hello"; stop "$KG_PID" TERM
  start_kghost 1; run kghost-1t "http://127.0.0.1:$KG_PORT/hello"; stop "$KG_PID" TERM
done

median() { sort -n | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
for s in nginx kghost kghost-1t; do
  printf '%-9s median req/s %10.0f  p50 %6.3f ms  p99 %6.3f ms  (runs: %s)\n' "$s" \
    "$(awk -v s=$s '$1==s{print $2}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{print $3}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{print $4}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{printf "%s ", $2}' "$WORK/results")"
done
ng=$(awk '$1=="nginx"{print $2}' "$WORK/results" | median)
for s in kghost kghost-1t; do
  kg=$(awk -v s=$s '$1==s{print $2}' "$WORK/results" | median)
  awk -v k="$kg" -v n="$ng" -v s=$s 'BEGIN{ printf "ratio %s/nginx: %.2f\n", s, k/n }'
done
