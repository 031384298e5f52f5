#!/usr/bin/env bash
# Installs kghost from the build tree, builds a plugin out of tree with
# find_package(kghost-plugin-api), loads it in the installed host and calls its route.
set -euo pipefail
build_dir=$1 source_dir=$2
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/tests/fixtures/out_of_tree" -B "$work/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
cat >"$work/k.toml" <<TOML
[[plugins]]
name = "ext_hello"
path = "$work/build/kg_ext_hello.so"
TOML
"$work/prefix/bin/kghost" --config "$work/k.toml" --check | grep -q '"name": "ext_hello"'
# Port 0: the host binds a free port itself and names it in the ready file once it serves.
"$work/prefix/bin/kghost" --config "$work/k.toml" --listen 127.0.0.1:0 \
  --ready-file "$work/ready" 2>"$work/log" &
pid=$!
for _ in $(seq 1 200); do
  [ -s "$work/ready" ] && break
  sleep 0.05
done
address=$(cat "$work/ready" 2>/dev/null || true)
body=$(curl -fsS "http://${address:-127.0.0.1:1}/ext/hello" 2>/dev/null || true)
echo "response: ${body:-<none>}"
[ "${body:-}" = '{"from":"out of tree"}' ]
kill -TERM "$pid"
wait "$pid"
echo "out-of-tree plugin loaded and served"
