#!/bin/sh
# Prints a directory holding Debian's arm64 builds of the libraries runvm
# links (headers and static archives), for cross-building it with
# `make ARCH=aarch64`. Unpacked with dpkg -x from `apt-get download`ed
# packages, never installed, into ${RUNVM_CACHE:-~/.cache/runvm}/sysroot/
# KEY, KEY hashing the package versions; fast when that is there.
# Needs the arm64 architecture in apt (make deps adds it).
set -eu
arch=${1:-aarch64}
[ "$arch" = aarch64 ] || { echo "cross-sysroot: only aarch64, not $arch" >&2; exit 2; }
pkgs="libjansson-dev libseccomp-dev libssl-dev libfdt-dev"
a64=$(for p in $pkgs; do printf '%s:arm64 ' "$p"; done)
# One apt-cache for all of them: each call reads the whole package lists
# (about a second here), and make runs this at every cross-build start.
# shellcheck disable=SC2086
policy=$(apt-cache policy $a64 2>/dev/null |
    awk '/^[^ ]/ { p = $1; sub(/:arm64:$/, "", p) } /^ *Candidate:/ { print p, $2 }')
vers=
for p in $pkgs; do
    v=$(echo "$policy" | awk -v p="$p" '$1 == p { print $2 }')
    case $v in ''|'(none)')
        echo "cross-sysroot: no arm64 package $p: run 'make deps' (it adds arm64 to apt)" >&2
        exit 1 ;;
    esac
    vers="$vers $p=$v"
done
key=$(echo "$vers" | sha256sum | cut -c1-16)
dir=${RUNVM_CACHE:-$HOME/.cache/runvm}/sysroot/arm64-$key
if [ ! -d "$dir" ]; then
    mkdir -p "${dir%/*}"
    tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    dl=$(mktemp -d)
    trap 'rm -rf "$tmp" "$dl"' EXIT
    chown _apt "$dl" 2>/dev/null || true # apt downloads as its _apt user
    # shellcheck disable=SC2086
    (cd "$dl" && apt-get download -q $a64 >&2)
    for d in "$dl"/*.deb; do dpkg -x "$d" "$tmp"; done
    rm -rf "$dl"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
echo "$dir"
