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
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/k.toml" <<TOML
[[plugins]]
name = "ext_hello"
path = "$work/build/kg_ext_hello.so"
TOML
"$work/prefix/bin/kghost" --config "$work/k.toml" --check | grep -q '"name": "ext_hello"'
"$work/prefix/bin/kghost" --config "$work/k.toml" --listen "127.0.0.1:$port" 2>"$work/log" &
pid=$!
for _ in $(seq 1 200); do
  body=$(curl -fsS "http://127.0.0.1:$port/ext/hello" 2>/dev/null) && break
  sleep 0.05
done
echo "response: ${body:-<none>}"
[ "${body:-}" = '{"from":"out of tree"}' ]
kill -TERM "$pid"
wait "$pid"
echo "out-of-tree plugin loaded and served"
