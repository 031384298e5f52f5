#!/usr/bin/env bash
# The image, correct by construction (no container engine runs here):
#   1. deploy/docker/Dockerfile passes the dockerfile-utils linter;
#   2. the runtime stage is bookworm, non-root, STOPSIGNAL SIGTERM, HEALTHCHECK on /health/live,
#      and installs no -dev package;
#   3. its apt package list provides every shared library that ldd reports for kghost,
#      kghost-keys and each plugin .so of this build (mapped with dpkg -S on this machine);
#   4. `cmake --install` (what the image copies) ships every plugin this build produced;
#   5. the sources the build stage COPYs are enough to configure the project (a file the build
#      needs but the stage leaves out fails here, not in the image build).
# Usage: dockerfile_test.sh BUILD_DIR SOURCE_DIR        exit 77 = skipped (tool missing)
set -euo pipefail
build=$1 src=$2
dockerfile=$src/deploy/docker/Dockerfile
lint=$src/scripts/node/node_modules/.bin/dockerfile-utils
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for tool in ldd dpkg; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (a Debian machine is needed)"; exit 77; }
done
[ -x "$lint" ] || { echo "SKIP: $lint missing: run scripts/install-deps.sh (npm ci in scripts/node)"; exit 77; }

# 1. lint
"$lint" lint "$dockerfile" || bad "dockerfile-utils lint reports the problems above"

# The runtime stage: from the last FROM to the end, continuation lines joined.
stage=$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$dockerfile" |
        sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')
# shellcheck disable=SC2016  # a literal ${DEBIAN_TAG}, as the Dockerfile spells it
grep -q '^FROM debian:\${DEBIAN_TAG}' <<<"$stage" || bad "runtime stage is not FROM debian:\${DEBIAN_TAG}"
grep -q '^ARG DEBIAN_TAG=bookworm' "$dockerfile" || bad "DEBIAN_TAG does not default to bookworm"
user=$(awk '/^USER /{u=$2} END{print u}' <<<"$stage")
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || bad "runtime USER '$user' is not a numeric non-root uid (runAsNonRoot needs one)"
grep -q '^STOPSIGNAL SIGTERM' <<<"$stage" || bad "no STOPSIGNAL SIGTERM"
grep -Eq '^HEALTHCHECK .*CMD .*/health/live' <<<"$stage" || bad "no HEALTHCHECK on /health/live"

# Packages the runtime stage installs: the words after `apt-get install` up to `&&`.
mapfile -t packages < <(grep -o 'apt-get install[^&]*' <<<"$stage" | sed 's/apt-get install//' |
                        tr ' ' '\n' | grep -v '^-' | grep -v '^$' | sort -u)
[ ${#packages[@]} -gt 0 ] || bad "the runtime stage installs no package"
for p in "${packages[@]}"; do
  [[ "$p" == *-dev ]] && bad "runtime stage installs the -dev package $p"
done
# With curl in the HEALTHCHECK, curl must be installed.
printf '%s\n' "${packages[@]}" | grep -qx curl || bad "HEALTHCHECK uses curl but the runtime stage does not install it"

# 3. every library ldd reports → its Debian package → in the list
binaries=("$build/bin/kghost" "$build/bin/kghost-keys" "$build"/bin/plugins/*.so)
# Libraries per binary, then one dpkg -S for all of them (it is slow per call). Merged /usr:
# dpkg may know a library under /lib or /usr/lib, by its link name or its real name.
declare -A users=() owner_of=() needed=()
for bin in "${binaries[@]}"; do
  [ -e "$bin" ] || { bad "$bin not built"; continue; }
  if ldd "$bin" | grep -q 'not found'; then bad "$bin: ldd reports a missing library"; fi
  while read -r lib; do users[$lib]+="$(basename "$bin") "; done \
    < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
done
spellings() { local real; real=$(readlink -f "$1"); printf '%s\n' "$1" "$real" "/usr${1#/usr}" "/usr${real#/usr}" "${1#/usr}" "${real#/usr}"; }
while IFS= read -r line; do  # "libfoo1:amd64: /usr/lib/…/libfoo.so.1"
  owner_of[${line#*: }]=${line%%:*}
done < <(for lib in "${!users[@]}"; do spellings "$lib"; done | sort -u | xargs dpkg -S 2>/dev/null | grep -v '^diversion')
for lib in "${!users[@]}"; do
  pkg=
  while read -r cand; do pkg=${owner_of[$cand]:-}; [ -n "$pkg" ] && break; done < <(spellings "$lib")
  if [ -z "$pkg" ]; then bad "$lib (needed by ${users[$lib]}) belongs to no Debian package"; continue; fi
  needed[$pkg]+="${users[$lib]}"
done
# What apt brings with the listed packages: their Depends and Pre-Depends, recursively (read
# from this machine's dpkg database, so a library libcurl4 pulls in counts as provided).
declare -A provided=()
todo=("${packages[@]}")
while [ ${#todo[@]} -gt 0 ]; do
  pkg=${todo[-1]}; unset 'todo[-1]'
  pkg=${pkg%%:*}
  [ -n "${provided[$pkg]:-}" ] && continue
  provided[$pkg]=1
  deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$pkg" 2>/dev/null || true)
  while read -r dep; do
    [ -n "$dep" ] && [ -z "${provided[$dep]:-}" ] && todo+=("$dep")
  done < <(tr ',|' '\n\n' <<<"$deps" | sed -E 's/\(.*\)//; s/:any//; s/^ +//; s/ +$//')
done
for pkg in "${!needed[@]}"; do
  case "$pkg" in
    libc6|libc6-*) ;;  # the dynamic loader and libc are in every Debian image, listed or not
    *) [ -n "${provided[${pkg%%:*}]:-}" ] ||
         bad "runtime stage lacks $pkg (needed by ${needed[$pkg]}), neither listed nor a dependency of a listed package" ;;
  esac
done
echo "runtime packages: ${packages[*]}"
echo "needed by ldd:    ${!needed[*]}"

# 4. the install tree the image copies holds every plugin of the build tree
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cmake --install "$build" --prefix "$staging" >/dev/null
[ -x "$staging/bin/kghost" ] || bad "cmake --install does not install bin/kghost"
for so in "$build"/bin/plugins/*.so; do
  [ -e "$staging/lib/kghost/plugins/$(basename "$so")" ] ||
    bad "$(basename "$so") is built but not installed (kg_add_plugin installs it; the image would miss it)"
done

# 5. configure from exactly what the build stage copies (COPY SRC... DEST, relative to the root)
context=$staging/context
mkdir -p "$context"
while read -r -a words; do
  dest=${words[-1]}
  for s in "${words[@]:1:${#words[@]}-2}"; do  # Docker's rules: a folder's content goes into
    if [ -d "$src/$s" ]; then                    # DEST; a file into DEST/ or as DEST
      mkdir -p "$context/$dest" && cp -r "$src/$s/." "$context/$dest"
    elif [[ "$dest" == */ ]]; then
      mkdir -p "$context/$dest" && cp "$src/$s" "$context/$dest"
    else
      mkdir -p "$(dirname "$context/$dest")" && cp "$src/$s" "$context/$dest"
    fi
  done
done < <(awk '/^FROM /{n++} n==1 && /^COPY / && !/--from/' "$dockerfile")
build_args=$(grep -o 'cmake --preset release [^&\\]*' "$dockerfile" | head -1 | sed 's/cmake --preset release//')
# shellcheck disable=SC2086  # the flags as the Dockerfile spells them
if ! (cd "$context" && cmake --preset release $build_args >"$staging/configure.log" 2>&1); then
  bad "the build stage's sources do not configure:"; tail -20 "$staging/configure.log"
fi

[ $fail -eq 0 ] && echo "dockerfile: ok"
exit $fail
