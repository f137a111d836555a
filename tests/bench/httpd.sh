#!/usr/bin/env bash
# runvm's HTTP server (api/httpd.c) against libmicrohttpd serving the same
# answer on the same one-thread event loop (tests/bench/httpd_peer.c), on
# the host (no VM): requests/s and latency at concurrency 1 and 8 (ROUNDS
# alternating rounds of N requests, a connection each, the best round of
# each kept), resident memory idle and with HOLD connections each holding
# half a request, and (with strace) the system calls each makes for a
# request and which of them runvm's event-loop seccomp filter
# (vmm/seccomp.c) does not allow today. Writes OUT/httpd.txt.
#
# usage: tests/bench/httpd.sh B=BUILD_DIR OUT=DIR [N=20000] [ROUNDS=3] [HOLD=500]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build OUT= N=20000 ROUNDS=3 HOLD=500
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; OUT=*) OUT=${a#OUT=} ;; N=*) N=${a#N=} ;;
    ROUNDS=*) ROUNDS=${a#ROUNDS=} ;; HOLD=*) HOLD=${a#HOLD=} ;;
    *) echo "usage: $0 B=BUILD_DIR OUT=DIR [N=20000] [ROUNDS=3] [HOLD=500]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "httpd.sh: OUT= missing" >&2; exit 2; }
P=$B/bench-bin/httpd-peer
[ -x "$P" ] || { echo "httpd.sh: no $P (make $P)" >&2; exit 2; }
mkdir -p "$OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/runvm-httpdbench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 4096
start() { # KIND: a server on $W/KIND.sock, its pid in $spid
    "$P" "$1" "$W/$1.sock" & spid=$!
    pids+=("$spid")
    for _ in $(seq 100); do [ -S "$W/$1.sock" ] && return 0; sleep 0.05; done
    echo "httpd.sh: $1 did not start" >&2; exit 1
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A best
for k in own mhd; do start "$k"; eval "pid_$k=$spid"; done
# Alternating rounds: both servers see the same machine noise.
for r in $(seq "$ROUNDS"); do
    for conc in 1 8; do
        for k in own mhd; do
            line=$("$P" client "$W/$k.sock" "$N" "$conc")
            tp=$(echo "$line" | awk '{print $6}')
            key=$k.$conc
            if [ -z "${best[$key]:-}" ] || [ "$tp" -gt "$(echo "${best[$key]}" | awk '{print $6}')" ]; then
                best[$key]=$line
            fi
        done
    done
done
: >"$OUT/httpd.txt"
for conc in 1 8; do
    for k in own mhd; do
        echo "${best[$k.$conc]}" | awk -v k="$k" -v c="$conc" '{
            printf "httpd_%s_conc%s %s requests/s, p50 %.0f us, p99 %.0f us (best of rounds)\n",
                k, c, $6, $8 * 1e6, $10 * 1e6 }' >>"$OUT/httpd.txt"
    done
done
# Memory: idle, then with HOLD connections each holding half a request.
for k in own mhd; do
    pid=$(eval echo "\$pid_$k")
    idle=$(rss "$pid")
    "$P" hold "$W/$k.sock" "$HOLD" >"$W/hold.$k" & hp=$!
    pids+=("$hp")
    for _ in $(seq 100); do grep -q holding "$W/hold.$k" && break; sleep 0.05; done
    sleep 0.5
    held=$(rss "$pid")
    kill "$hp"; wait "$hp" 2>/dev/null || true
    echo "httpd_${k}_rss idle $idle KiB, $HOLD connections held $held KiB ($(( (held - idle) * 1024 / HOLD )) bytes each)" >>"$OUT/httpd.txt"
done
# System calls for a request: the loop's filter must allow every one.
if command -v strace >/dev/null; then
    allowed=$(grep -o 'SCMP_SYS([a-z0-9_]*)' vmm/seccomp.c | sed 's/SCMP_SYS(\(.*\))/\1/' | sort -u)
    for k in own mhd; do
        kill "$(eval echo "\$pid_$k")"
        strace -f -qq -c -o "$W/strace.$k" "$P" "$k" "$W/s$k.sock" & tp=$!
        pids+=("$tp")
        for _ in $(seq 100); do [ -S "$W/s$k.sock" ] && break; sleep 0.05; done
        "$P" client "$W/s$k.sock" 2000 1 >/dev/null
        kill -TERM "$(pgrep -P "$tp" httpd-peer || echo "$tp")" 2>/dev/null || true
        wait "$tp" 2>/dev/null || true
        # A run's calls, minus those of starting and stopping (once each).
        calls=$(awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ && $4 >= 2000 {n += $4} END {printf "%.1f", n / 2000}' "$W/strace.$k")
        names=$(awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ && $4 >= 2000 {print $NF}' "$W/strace.$k" | sort | tr '\n' ' ')
        missing=
        for s in $names; do echo "$allowed" | grep -qx "$s" || missing="$missing $s"; done
        echo "httpd_${k}_syscalls $calls a request: $names; not in runvm's loop filter:${missing:- none}" >>"$OUT/httpd.txt"
    done
else
    echo "httpd: no strace, system calls not counted" >>"$OUT/httpd.txt"
fi
size() { stat -c %s "$1"; }
lib=$(ldd "$P" | awk '/libmicrohttpd/ {print $3}')
echo "httpd_code api/httpd.c + api/http.c: $(cat api/httpd.c api/http.c | wc -l) lines, $(( $(size "$B/obj/api/httpd.o") + $(size "$B/obj/api/http.o") )) bytes of objects; libmicrohttpd $(basename "$(readlink -f "$lib")"): $(size "$(readlink -f "$lib")") bytes, plus libgnutls it links" >>"$OUT/httpd.txt"
cat "$OUT/httpd.txt" >&2
