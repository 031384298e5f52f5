#!/usr/bin/env bash
# Reloads under load: wrk at 50 connections on an authenticated route (GET /api/v1/health,
# auth + devkeys) and a second wrk sending signed Stripe webhooks, while the host is sent 20
# SIGHUPs alternating two configs (the fixture plugin reload_a re-created with a new value each
# time, reload_b added and removed; auth, devkeys, hello and webhooks kept). Rounds alternate
# "steady" (no reload) and "reloading" on the same host, so the two are measured side by side.
# Fails on any non-2xx answer, socket error, a reload that did not take, or an acknowledged
# webhook the plugin did not count as received.
#   bench/run_reload_bench.sh [build-dir]        (default build/release)
# Knobs: DUR=10 (seconds) CONNS=50 WH_CONNS=10 RELOADS=20 ROUNDS=2 PEERS=../shared/peers
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build/release}")
DUR=${DUR:-10} CONNS=${CONNS:-50} WH_CONNS=${WH_CONNS:-10} RELOADS=${RELOADS:-20} ROUNDS=${ROUNDS:-2}
PEERS=${PEERS:-$(realpath ../shared/peers)}
source bench/bench_lib.sh
bench_scratch kghost-reloadbench

write_config() {  # write_config FILE VALUE RELOAD_B_ENABLED
  cat >"$1" <<TOML
plugin_dir = "$BUILD/bin/plugins"
mode = "dev"
log_level = "warn"
data_dir = "$WORK/data"
[server]
threads = 2
[store]
backend = "memory"
[[plugins]]
name = "hello"
[[plugins]]
name = "auth"
[plugins.config.tiers.ENTERPRISE]
limit = 1000000000
[[plugins]]
name = "devkeys"
[[plugins]]
name = "webhooks"
[plugins.config]
secrets = "whsec_test_secret"
journal_dir = "$WORK/data/webhooks"
rate_limit = 0
[[plugins]]
name = "reload_a"
path = "$BUILD/bin/test-plugins/kg_reload_a.so"
[plugins.config]
value = "$2"
[[plugins]]
name = "reload_b"
path = "$BUILD/bin/test-plugins/kg_reload_b.so"
enabled = $3
TOML
}

write_config "$WORK/a.toml" one true
write_config "$WORK/b.toml" two false
cp "$WORK/a.toml" "$WORK/kghost.toml"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
"$BUILD/bin/kghost" --config "$WORK/kghost.toml" --listen "127.0.0.1:$PORT" 2>"$WORK/kghost.log" &
KG=$!; pids+=("$KG")
for _ in $(seq 200); do curl -sf "$URL/health/ready" >/dev/null && break; sleep 0.05; done
curl -sf -H 'X-API-Key: kg_dev_carol' "$URL/api/v1/health" >/dev/null

generation() { curl -s "$URL/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"]["number"])'; }
received() { curl -s "$URL/webhooks/stripe/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["received"])'; }

reload_loop() {  # RELOADS SIGHUPs spread over the round, each waited for
  local gap next want
  gap=$(awk -v d="$DUR" -v n="$RELOADS" 'BEGIN {printf "%.3f", (d - 1) / n}')
  for i in $(seq "$RELOADS"); do
    sleep "$gap"
    if ((i % 2)); then cp "$WORK/b.toml" "$WORK/kghost.toml.next"; else cp "$WORK/a.toml" "$WORK/kghost.toml.next"; fi
    mv "$WORK/kghost.toml.next" "$WORK/kghost.toml"
    want=$(($(generation) + 1))
    kill -HUP "$KG"
    for _ in $(seq 400); do next=$(generation); ((next >= want)) && break; sleep 0.01; done
    ((next >= want)) || { echo "reload $i did not take (generation $next, wanted $want)" >&2; return 1; }
  done
}

field() { awk -v k="$1" '$1==k {print $2}' <<<"$2"; }
errors() { awk '/Socket errors/ {print $0}' <<<"$1"; }
non2xx() { local n; n=$(awk '/Non-2xx/ {print $NF}' <<<"$1"); echo "${n:-0}"; }
total() { awk '/requests in/ {print $1}' <<<"$1"; }

echo "== kghost reload bench: $(nproc) cores, wrk -t1 -c$CONNS auth + -c$WH_CONNS webhooks, ${DUR}s rounds, $RELOADS reloads per reloading round; load: $(uptime | sed 's/.*load average: //')"
fail=0
for round in $(seq "$ROUNDS"); do
  for phase in steady reloading; do
    # Fresh event ids for every round: a replayed id is a (correct) duplicate, never received.
    python3 bench/gen_stripe_requests.py --n 150000 --prefix "rl$$r${round}${phase}" --out "$WORK/reqs.txt"
    before=$(received)
    wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H 'X-API-Key: kg_dev_carol' "$URL/api/v1/health" >"$WORK/auth.out" 2>&1 &
    wa=$!
    wrk -t1 -c"$WH_CONNS" -d"${DUR}s" --latency -s "$PEERS/stripe_webhook.lua" "$URL" -- "$WORK/reqs.txt" 1 >"$WORK/wh.out" 2>&1 &
    ww=$!
    gen0=$(generation)
    if [[ $phase == reloading ]]; then reload_loop || fail=1; fi
    wait "$wa" "$ww"
    auth=$(cat "$WORK/auth.out") wh=$(cat "$WORK/wh.out")
    # Every acknowledged webhook is counted as received once the plugin has it (it is durable
    # before the 200); give the counter a moment to catch up, never more than 5 s.
    acked=$(($(total "$wh") - $(non2xx "$wh")))
    deadline=$((SECONDS + 5))
    while (($(received) - before < acked && SECONDS < deadline)); do sleep 0.05; done
    got=$(($(received) - before))
    printf 'round %d %-9s auth: %8s req/s p50 %-8s p99 %-8s non2xx %s %s | webhooks: %7s req/s p99 %-8s acked %s received %s non2xx %s %s | generations %s→%s\n' \
      "$round" "$phase" "$(awk '/Requests\/sec/ {print $2}' <<<"$auth")" "$(field 50% "$auth")" "$(field 99% "$auth")" \
      "$(non2xx "$auth")" "$(errors "$auth")" "$(awk '/Requests\/sec/ {print $2}' <<<"$wh")" "$(field 99% "$wh")" \
      "$acked" "$got" "$(non2xx "$wh")" "$(errors "$wh")" "$gen0" "$(generation)"
    if [[ $(non2xx "$auth") != 0 || $(non2xx "$wh") != 0 || -n $(errors "$auth")$(errors "$wh") ]]; then fail=1; fi
    ((got >= acked)) || fail=1
  done
done
grep -q '"level":"error"' "$WORK/kghost.log" && { echo "errors in the host log:"; grep '"level":"error"' "$WORK/kghost.log" | head; fail=1; }
kill -0 "$KG" || { echo "the host died"; fail=1; }
exit $fail
