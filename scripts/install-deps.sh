#!/usr/bin/env bash
# Installs every Debian package kghost needs to build, test and benchmark.
# Safe to run twice: apt-get skips what is already there.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries
  libboost-dev libboost-filesystem-dev libboost-program-options-dev
  libnats-dev libhiredis-dev libcurl4-openssl-dev libtomlplusplus-dev libspdlog-dev
  prometheus-cpp-dev nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev
  # real servers used by tests and benchmarks
  redis-server redis-tools nats-server wrk nginx-light curl python3 ca-certificates
  # the OpenResty-style peer of bench/run_openresty_bench.sh (nginx + Lua)
  libnginx-mod-http-lua
  # the FastAPI peer of bench/run_webhooks_bench.sh (uvicorn with uvloop and httptools)
  python3-fastapi python3-uvicorn python3-uvloop python3-httptools
  # checkers the tests run: promtool (alert rules, metrics), kubectl (kustomize), npm validators,
  # python3-yaml (reads the rendered manifests, the alert rules and the dashboard),
  # universal-ctags (function lengths for scripts/check-size.sh)
  prometheus python3-yaml universal-ctags
  # bench/soak plots
  gnuplot-nox
)

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come with the machine rather than from Debian: take Debian's only when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every Debian package is already installed"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The Debian packages start services on install; tests start their own on free ports.
  for svc in redis-server nginx nats-server prometheus; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

# kubectl (for `kubectl kustomize`) is not in Debian bookworm; the CI image ships it. Say so
# plainly where it is missing instead of failing a test obscurely.
command -v kubectl >/dev/null 2>&1 || echo "install-deps: kubectl not found (the machine image ships it); the deploy render test will be skipped"

# npm validators (OpenAPI, Kubernetes schemas, Dockerfile lint), pinned in scripts/node.
node_dir="$(cd "$(dirname "$0")" && pwd)/node"
if [ ! -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
  echo "install-deps: npm ci in scripts/node"
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error
  touch "$node_dir/node_modules"
fi
