#!/usr/bin/env bash
# Observability overhead on the host-core route: kghost serving GET /hello (hello plugin)
# without the observability plugin ("off"), with it at access_log_sample_rate 1.0 ("on":
# request metrics + one access-log line per request, written to a file as a log collector
# would read it), and at 0.01 ("on-sampled"), interleaved in one run. wrk -t1 -d$DUR, REPS
# passes, median req/s and the ratio on/off. The lead runs it on a quiet machine.
#   bench/run_observability_bench.sh [build-dir]      (default build/release; build it first)
# Knobs: DUR=10s REPS=3 CONNS=50 THREADS=0 (I/O threads; 0: one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
DUR=${DUR:-10s} REPS=${REPS:-3} CONNS=${CONNS:-50} THREADS=${THREADS:-0}
WORK=$(mktemp -d /tmp/kghost-obs-bench.XXXXXX)
KG_PID=
cleanup() { [ -n "$KG_PID" ] && kill "$KG_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

start_kghost() {  # start_kghost off|on|on-sampled
  KG_PORT=$(free_port)
  cat >"$WORK/kghost.toml" <<TOML
log_level = "info"
data_dir = "$WORK/data"
[server]
threads = $THREADS
[[plugins]]
name = "hello"
TOML
  case $1 in
    on) printf '[[plugins]]\nname = "observability"\n[plugins.config]\naccess_log_sample_rate = 1.0\n' >>"$WORK/kghost.toml" ;;
    on-sampled) printf '[[plugins]]\nname = "observability"\n[plugins.config]\naccess_log_sample_rate = 0.01\n' >>"$WORK/kghost.toml" ;;
  esac
  "$BUILD/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$KG_PORT" 2>"$WORK/kghost-$1.log" &
  KG_PID=$!
  wait_http "http://127.0.0.1:$KG_PORT/hello"
}
stop() { kill -TERM "$KG_PID" 2>/dev/null || true; wait "$KG_PID" 2>/dev/null || true; KG_PID=; }

run() {  # run NAME: warm-up, measured wrk run; appends "name rps p50_ms p99_ms log_lines"
  local name=$1 url="http://127.0.0.1:$KG_PORT/hello" out
  wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null 2>&1
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency "$url")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  echo "$name $rps $(to_ms "$p50") $(to_ms "$p99") $(grep -c '"msg":"access ' "$WORK/kghost-$name.log" || true)" | tee -a "$WORK/results"
}
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print v }'; }

echo "# hot path in-process (bench/observability_bench.cpp, CPU time per request):"
"$BUILD/bin/observability_bench"
echo "# $(date -u '+%F %T UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "# wrk -t1 -c$CONNS -d$DUR, threads=$THREADS, $REPS interleaved passes; columns: variant req/s p50_ms p99_ms access_lines"
for r in $(seq 1 "$REPS"); do
  for v in off on on-sampled; do start_kghost "$v"; run "$v"; stop; done
done

median() { sort -n | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
for s in off on on-sampled; do
  printf '%-10s median req/s %10.0f  p50 %6.3f ms  p99 %6.3f ms  (runs: %s)\n' "$s" \
    "$(awk -v s=$s '$1==s{print $2}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{print $3}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{print $4}' "$WORK/results" | median)" \
    "$(awk -v s=$s '$1==s{printf "%s ", $2}' "$WORK/results")"
done
off=$(awk '$1=="off"{print $2}' "$WORK/results" | median)
for s in on on-sampled; do
  v=$(awk -v s=$s '$1==s{print $2}' "$WORK/results" | median)
  awk -v a="$v" -v b="$off" -v s=$s 'BEGIN{ printf "ratio %s/off: %.3f\n", s, a/b }'
done
