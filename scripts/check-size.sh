#!/usr/bin/env bash
# Size limits of the host's code: no file in host/ over 500 lines, no function over 80.
# Prints every file and function over its limit (longest first) and exits 1 if there is one.
# Function extents come from universal-ctags (its end: field), lambdas included.
# usage: scripts/check-size.sh [--allow LIST] [DIR]   (default: host/ of this repository)
#   --allow LIST: a file of entries ("runtime/durable_queue.cpp", "http/chunked.cpp feed") that
#   are reported but do not fail the check: code over the limit that is being split elsewhere.
set -euo pipefail
allow=/dev/null
if [[ ${1:-} == --allow ]]; then
  allow=$2
  shift 2
fi
dir=${1:-"$(cd "$(dirname "$0")/.." && pwd)/host"}
max_file=500 max_function=80
allowed() { grep -v '^#' "$allow" | grep -qxF "$1"; }

command -v ctags >/dev/null && ctags --version 2>/dev/null | grep -q Universal ||
  { echo "check-size: needs universal-ctags (scripts/install-deps.sh installs it)" >&2; exit 2; }

mapfile -t files < <(find "$dir" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \
  -o -name '*.in' \) | sort)
over=0
while read -r lines file; do
  [[ $file == total ]] && continue
  if ((lines > max_file)); then
    name=${file#"$dir"/}
    if allowed "$name"; then
      echo "file $name: $lines lines (limit $max_file; allowed for now)"
    else
      echo "file $name: $lines lines (limit $max_file)"
      over=1
    fi
  fi
done < <(wc -l "${files[@]}" | sort -rn)

cxx=()
for f in "${files[@]}"; do [[ $f == *.cpp || $f == *.hpp || $f == *.h ]] && cxx+=("$f"); done
while IFS=$'\t' read -r length where; do
  file=${where%%:*} name=${where##* }
  if allowed "$file $name"; then
    echo "function $where: $length lines (limit $max_function; allowed for now)"
  else
    echo "function $where: $length lines (limit $max_function)"
    over=1
  fi
done < <(ctags --language-force=c++ --kinds-c++=f --fields=+ne -f - "${cxx[@]}" |
  awk -F'\t' -v max="$max_function" -v dir="$dir/" '{
      line = 0; end = 0
      for (i = 4; i <= NF; i++) {
        if ($i ~ /^line:/) line = substr($i, 6)
        if ($i ~ /^end:/) end = substr($i, 5)
      }
      n = end - line + 1
      file = $2; sub(dir, "", file)
      name = $1 ~ /^__anon/ ? "(lambda)" : $1
      if (end && n > max) printf "%d\t%s:%d %s\n", n, file, line, name
    }' | sort -rn)

if ((over == 0)); then
  echo "check-size: no file in ${dir##*/}/ over $max_file lines and no function over $max_function" \
    "but those allowed above"
fi
exit $over
