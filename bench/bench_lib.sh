# Helpers shared by the wrk benchmarks (sourced, not run). The caller sets WORK (a scratch
# directory) and CONNS / DUR, and appends its server pids to the `pids` array.
# shellcheck shell=bash

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # wait_http URL [curl args]: up to 10 s
  local url=$1; shift
  for _ in $(seq 1 200); do curl -fs "$@" "$url" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "no answer from $url" >&2; return 1
}
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print v }'; }
median() { sort -n | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# CPU ticks of every thread of these processes and their children: "tid ticks" lines.
thread_ticks() {
  local p t
  for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
    for t in /proc/"$p"/task/*/stat; do
      [[ -r $t ]] && awk '{sub(/^.*\) /, ""); print FILENAME, $12 + $13}' "$t" 2>/dev/null
    done
  done
}
# Between two thread_ticks snapshots over SECS seconds: the three busiest threads as % of one
# core ("95+4+1%"), then the CPU time all of them used per request (us) at RPS requests/s.
# CPU per request barely moves with the machine's load, where req/s and latency do.
cpu_use() {  # cpu_use BEFORE_FILE AFTER_FILE SECS RPS
  awk 'NR==FNR {b[$1]=$2; next} {d=$2-b[$1]; if (d > 0) print d}' "$1" "$2" | sort -rn |
    awk -v s="$3" -v r="$4" -v hz="$(getconf CLK_TCK)" '
      {t += $1; if (NR <= 3) split_ = split_ sprintf("%s%.0f", (NR>1 ? "+" : ""), 100 * $1 / hz / s)}
      END {printf "%s%% %.2f", (split_ == "" ? "0" : split_), (r > 0 ? 1e6 * t / hz / (r * s) : 0)}'
}

# run NAME URL [wrk args]: a 2 s warm-up, then one measured wrk run. Appends
# "NAME req/s p50_ms p99_ms load1 busiest-threads server-cpu-us/req" to $WORK/results.
# The servers' pids (their threads and children are counted): $SERVER_PIDS.
run() {
  local name=$1 url=$2 out secs
  shift 2
  wrk -t1 -c"$CONNS" -d2s "$@" "$url" >/dev/null 2>&1
  secs=${DUR%s}
  thread_ticks ${SERVER_PIDS:-} >"$WORK/ticks.before"
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency "$@" "$url")
  thread_ticks ${SERVER_PIDS:-} >"$WORK/ticks.after"
  if grep -q -E "Non-2xx|Socket errors" <<<"$out"; then echo "$name: errors: $out" >&2; exit 1; fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  echo "$name $rps $p50 $p99 $(load1) $(cpu_use "$WORK/ticks.before" "$WORK/ticks.after" "$secs" "$rps")" |
    tee -a "$WORK/results"
}

# summary NAME...: medians of each name's runs (req/s, p50, p99, server CPU per request), with
# the runs' req/s and p99.
summary() {
  local s
  for s in "$@"; do
    printf '%-18s req/s %7.0f  p50 %6.3f ms  p99 %6.3f ms  cpu %5.2f us/req  (req/s: %s; p99: %s)\n' \
      "$s" "$(med_of "$s" 2)" "$(med_of "$s" 3)" "$(med_of "$s" 4)" "$(med_of "$s" 7)" \
      "$(awk -v s="$s" '$1==s{printf "%.0f ", $2}' "$WORK/results")" \
      "$(awk -v s="$s" '$1==s{printf "%s ", $4}' "$WORK/results")"
  done
}
med_of() { awk -v s="$1" -v c="$2" '$1==s{print $c}' "$WORK/results" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }

# launch_kghost BUILD NAME: runs BUILD/bin/kghost on $WORK/NAME.toml at a free port, sets
# pid_NAME and port_NAME, adds the pid to pids and waits until the authenticated route answers.
launch_kghost() {
  local build=$1 name=$2 port
  port=$(free_port)
  "$build/bin/kghost" --config "$WORK/$name.toml" --listen "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
  pids+=($!)
  printf -v "pid_$name" %s "$!"
  printf -v "port_$name" %s "$port"
  wait_http "http://127.0.0.1:$port/api/v1/health" -H 'X-API-Key: kg_dev_bob'
}

# bench_scratch NAME: a scratch directory in WORK and an empty `pids` array; on exit every pid
# in it is stopped and the directory removed.
bench_scratch() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
}
