#!/usr/bin/env bash
# config/production.toml passes `kghost --check` with the environment it documents, against a
# real redis-server and nats-server -js on free loopback ports; it enables every plugin this
# build ships except devkeys; and a missing secret stops it with exit 2 naming the variable.
# Usage: production_config_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
kghost=$build/bin/kghost
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS COMMAND...: polls until the command succeeds or time runs out
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids+=($!)
nats_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_for 20 redis-cli -p "$redis_port" ping || { cat "$work/redis.log"; exit 1; }
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$nats_port" || { cat "$work/nats.log"; exit 1; }

# A keys file as the Secret kghost-api-keys provides it (hashes only).
"$build/bin/kghost-keys" new --tenant t1 --user u1 --tier PRO --file "$work/keys.jsonl" >/dev/null 2>&1
mkdir -p "$work/data"
documented_env=(
  REDIS_URL="redis://127.0.0.1:$redis_port"
  NATS_SERVERS="nats://127.0.0.1:$nats_port"
  STRIPE_WEBHOOK_SECRET="whsec_current_test,whsec_next_test"
  KG_STREAM_TOKEN_SECRET="0123456789abcdef0123456789abcdef"
  OPENMETER_URL="http://127.0.0.1:9"
  OPENMETER_API_KEY="om_test_key"
  KG_KEYS_FILE="$work/keys.jsonl"
  KG_DATA_DIR="$work/data"
)
run_check() { env -i PATH="$PATH" HOME="$work" "$@" "$kghost" --config "$src/config/production.toml" --check; }

if run_check "${documented_env[@]}" >"$work/check.out" 2>"$work/check.err"; then
  grep -q '"mode": "production"' "$work/check.out" || bad "--check does not report mode production"
  grep -q '"store": "redis"' "$work/check.out" || bad "--check does not report the redis store"
else
  bad "kghost --check exited $? with the documented env:"; cat "$work/check.out" "$work/check.err"
fi

# Every shipped plugin except devkeys is configured (and loaded by --check).
for so in "$build"/bin/plugins/kg_*.so; do
  plugin=$(basename "$so" .so); plugin=${plugin#kg_}
  if [ "$plugin" = devkeys ]; then
    grep -q '"name": "devkeys"' "$work/check.out" && bad "devkeys is loaded in production"
  else
    grep -q "\"name\": \"$plugin\"" "$work/check.out" ||
      bad "plugin $plugin is built but config/production.toml does not enable it"
  fi
done

# Secrets only from the environment, and a missing one is a clear config error (exit 2).
for var in STRIPE_WEBHOOK_SECRET REDIS_URL NATS_SERVERS KG_STREAM_TOKEN_SECRET; do
  env_without=()
  for kv in "${documented_env[@]}"; do [[ "$kv" == "$var="* ]] || env_without+=("$kv"); done
  set +e; run_check "${env_without[@]}" >"$work/missing.out" 2>&1; rc=$?; set -e
  [ $rc -eq 2 ] || bad "without $var --check exits $rc, not 2"
  grep -q "$var" "$work/missing.out" || bad "without $var the error does not name it: $(cat "$work/missing.out")"
done

# Production mode refuses the dev keys even if someone adds them.
sed 's/^# devkeys is dev-only.*/[[plugins]]\nname = "devkeys"/' "$src/config/production.toml" >"$work/with-devkeys.toml"
set +e
env -i PATH="$PATH" HOME="$work" "${documented_env[@]}" "$kghost" --config "$work/with-devkeys.toml" --check \
  >"$work/devkeys.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || bad "production config with devkeys: --check exits $rc, not 2"
grep -q devkeys "$work/devkeys.out" || bad "the refusal does not name devkeys: $(cat "$work/devkeys.out")"

[ $fail -eq 0 ] && echo "production config: ok"
exit $fail
