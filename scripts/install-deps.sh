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
)

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every package is already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian packages start services on install; tests start their own on free ports.
for svc in redis-server nginx nats-server; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
done
