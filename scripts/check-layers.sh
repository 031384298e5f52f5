#!/usr/bin/env bash
# Checks that the host's includes follow the layering table in README.md ("## Layering"): a
# folder of host/ includes headers of itself and of the folders its row names, and of every
# folder its row names at least one (so the table stays exact). Exits 1 on a mismatch.
# usage: scripts/check-layers.sh [REPO]   (default: this repository)
set -euo pipefail
repo=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
readme=$repo/README.md

# Rows like: | `host/plugins` | `common`, `config`, `http` | ...
mapfile -t rows < <(awk '/^## Layering/ { on = 1; next } on && /^## / { exit }
  on && /^\| `host\/[a-z_]+` \|/ { print }' "$readme")
((${#rows[@]} > 0)) || { echo "check-layers: no layering table in $readme" >&2; exit 2; }

bad=0
declare -A declared
for row in "${rows[@]}"; do
  folder=$(sed -E 's/^\| `host\/([a-z_]+)` \|.*/\1/' <<<"$row")
  allowed=$(awk -F'|' '{ print $3 }' <<<"$row" | grep -oE '`[a-z_]+`' | tr -d '`' | sort -u || true)
  declared[$folder]=1
  [[ -d $repo/host/$folder ]] || { echo "layering: README lists host/$folder, which does not exist"; bad=1; continue; }
  used=$(grep -rhoE '^#include "[a-z_]+/' "$repo/host/$folder" | sed -E 's/#include "([a-z_]+)\//\1/' |
    grep -vx "$folder" | sort -u || true)
  for dep in $used; do
    if ! grep -qx "$dep" <<<"$allowed"; then
      echo "layering: host/$folder includes $dep/ but README.md does not let it:" \
        "$(grep -rlE "^#include \"$dep/" "$repo/host/$folder" | sed "s|$repo/||" | tr '\n' ' ')"
      bad=1
    fi
  done
  for dep in $allowed; do
    grep -qx "$dep" <<<"$used" || { echo "layering: README.md lets host/$folder include $dep/, which it does not"; bad=1; }
  done
done
for dir in "$repo"/host/*/; do
  f=$(basename "$dir")
  [[ -n ${declared[$f]:-} ]] || { echo "layering: host/$f has no row in README.md's layering table"; bad=1; }
done
((bad == 0)) && echo "check-layers: host/ includes match README.md's layering table (${#rows[@]} folders)"
exit $bad
