#!/usr/bin/env bash
# The host links no store backend client: hiredis is the store_redis plugin's alone.
# Usage: host_links_no_hiredis.sh KGHOST_BINARY STORE_REDIS_PLUGIN
set -euo pipefail
host_libs=$(ldd "$1")
plugin_libs=$(ldd "$2")
if grep -qi hiredis <<<"$host_libs"; then
  echo "FAIL: $1 links hiredis:" >&2
  grep -i hiredis <<<"$host_libs" >&2
  exit 1
fi
if ! grep -qi hiredis <<<"$plugin_libs"; then
  echo "FAIL: $2 should link hiredis (is the check looking at the right files?)" >&2
  exit 1
fi
echo "ok: kghost links no hiredis; the store_redis plugin does"
