#!/usr/bin/env bash
# Snippet benchmark: hello world in each language (examples/hello.*), request
# to exit, runvm on a booted VM (API mode) and from a cold start
# (`runvm --lang L FILE`), each beside the same build-and-run done natively
# in the same host: the image's root filesystem unpacked and chrooted, its
# lang.conf's ENV, BUILD and RUN, warm caches. N native and booted runs
# interleaved, then N cold runs, per language (tests/bench/snippet.py). A
# language whose image is missing is skipped with a note in OUT/notes.
# Writes seconds, one a line, to OUT/snippet_L_{booted,cold}.{runvm,peer}.s.
#
# usage: tests/bench/lang.sh B=BUILD_DIR N=RUNS OUT=DIR [LANGS="go rust c python"]
# (a LANGS word is LANG, its default version, or LANG@VERSION.)
# Needs /dev/kvm (tests/bench/run provides it) and root (chroot, mount).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build N=3 OUT= LANGS="go rust c python"
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; N=*) N=${a#N=} ;; OUT=*) OUT=${a#OUT=} ;; LANGS=*) LANGS=${a#LANGS=} ;;
    *) echo "usage: $0 B=BUILD_DIR N=RUNS OUT=DIR [LANGS=...]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "lang.sh: OUT= missing" >&2; exit 2; }
case $B in /*) ;; *) B=$top/$B ;; esac
mkdir -p "$OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/runvm-langbench.XXXXXX")
cleanup() {
    umount -l "$W/root/proc" "$W/root/dev" 2>/dev/null || true
    rm -rf --one-file-system "$W"
}
trap cleanup EXIT
failed=
declare -A EXT=([go]=go [rust]=rs [c]=c [python]=py)
# The image runvm picks for LANG (its default) or LANG@VERSION (exactly).
image_of() {
    local l=${1%%@*} v=
    [[ $1 == *@* ]] && v=${1#*@}
    "$B/bin/runvm" --list-langs 2>/dev/null | awk -v l="$l" -v v="$v" '
        NR > 1 && $1 == l && (v == "" ? $3 == "yes" : $2 == v) && $NF !~ /\)$/ { print $NF; exit }'
}

for L in $LANGS; do
    src=examples/hello.${EXT[${L%%@*}]:-${L%%@*}}
    IMG=$(image_of "$L")
    if [ -z "$IMG" ]; then
        echo "snippet_$L: skipped, no image for $L (make images IMAGE_LANGS=$L)" >>"$OUT/notes"
        echo "lang.sh: no $L image: skipped" >&2
        continue
    fi
    [ -f "$src" ] || { echo "lang.sh: $src missing" >&2; exit 1; }
    echo "bench: snippet $L: $N interleaved runs each of native and booted VM, then $N cold runvm" >&2
    cleanup; mkdir -p "$W/root"
    case $IMG in
    *.lz4) lz4 -dc "$IMG" ;; *.gz) gzip -dc "$IMG" ;; *) cat "$IMG" ;;
    esac | (cd "$W/root" && cpio -idm --quiet 2>/dev/null)
    mkdir -p "$W/root/proc" "$W/root/dev" "$W/root/tmp"
    mount -t proc proc "$W/root/proc"
    mount --bind /dev "$W/root/dev"
    python3 tests/bench/snippet.py "$B/bin/runvm" "$L" "$src" "$W/root" "$N" "$OUT" ||
        failed="$failed $L"
done
# A language that failed fails the part, after the others have run.
[ -z "$failed" ] || { echo "lang.sh: failed:$failed" >&2; exit 1; }
