#!/usr/bin/env bash
# runvm serve under a bounded load from loopback (tests/bench/serve-load.py):
# REQUESTS hello-world submissions (examples/hello.*) at concurrency CONC,
# each a fresh VM, POST /start over TCP to the run's exit event; against
# the same hello world as one `runvm --lang L FILE` process per request
# (ONESHOT of them, same concurrency, same snapshot store), in the same
# KVM environment. Per language: throughput both ways and their ratio,
# p50 and p99 and their ratio, failures, and the resident memory of the
# daemon and its VMs sampled during the load (its peak). Writes
# OUT/serve.txt (figure value lines), OUT/serve_L.{serve,oneshot}.s (one
# latency a line) and OUT/serve-latency.svg (the two latency
# distributions side by side, gnuplot).
#
# usage: tests/bench/serve.sh B=BUILD_DIR OUT=DIR [LANGS="python go"]
#        [REQUESTS=500] [ONESHOT=40] [CONC=8] [MAX_VMS=4] [WARM=2]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build OUT= LANGS="python go" REQUESTS=500 ONESHOT=40 CONC=8 MAX_VMS=4 WARM=2
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; OUT=*) OUT=${a#OUT=} ;; LANGS=*) LANGS=${a#LANGS=} ;;
    REQUESTS=*) REQUESTS=${a#REQUESTS=} ;; ONESHOT=*) ONESHOT=${a#ONESHOT=} ;;
    CONC=*) CONC=${a#CONC=} ;; MAX_VMS=*) MAX_VMS=${a#MAX_VMS=} ;; WARM=*) WARM=${a#WARM=} ;;
    *) echo "usage: $0 B=BUILD_DIR OUT=DIR [LANGS=...] [REQUESTS=N] [ONESHOT=N] [CONC=N]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "serve.sh: OUT= missing" >&2; exit 2; }
case $B in /*) ;; *) B=$top/$B ;; esac
mkdir -p "$OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/runvm-servebench.XXXXXX")
pid=
cleanup() {
    [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
    pkill -9 -f -- "--api-fd 3" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
export XDG_RUNTIME_DIR=$W/xdg
mkdir -p "$XDG_RUNTIME_DIR"
declare -A EXT=([go]=go [rust]=rs [c]=c [python]=py)
port=$((30000 + $$ % 20000))
plots=
: >"$OUT/serve.txt"
for L in $LANGS; do
    base=${L%%@*}
    file=examples/hello.${EXT[$base]:-x}
    if ! "$B/bin/runvm" --list-langs 2>/dev/null | awk -v l="$base" 'NR > 1 && $1 == l && $3 == "yes" && $NF !~ /\)$/ { f = 1 } END { exit !f }' ||
        [ ! -f "$file" ]; then
        echo "serve_$L: skipped (no image or no $file)" >>"$OUT/notes"
        continue
    fi
    echo "bench: serve $L: $REQUESTS requests at concurrency $CONC, --max-vms $MAX_VMS --warm $WARM" >&2
    "$B/bin/runvm" serve --api-sock "$W/serve.sock" --listen "127.0.0.1:$port" --langs "$L" \
        --max-vms "$MAX_VMS" --warm "$WARM" --queue $((REQUESTS + CONC)) --timeout 60 \
        >"$W/serve.out" 2>"$W/serve.err" &
    pid=$!
    U=http://127.0.0.1:$port
    for _ in $(seq 600); do curl -s -o /dev/null "$U/status" && break; sleep 0.1; done
    # One untimed request: a snapshot taken if none yet, the pool filled.
    python3 tests/bench/serve-load.py serve "$U" "$L" "$file" 1 1 "$W/warmup" >/dev/null
    sleep 5
    # The daemon's and its VMs' resident memory while the load runs.
    (while kill -0 $pid 2>/dev/null; do
        curl -s "$U/metrics" | awk '/^runvm_serve_resident_bytes/ {s += $2} END {if (s) print s}'
        sleep 2
    done) >"$W/rss" &
    sampler=$!
    line=$(python3 tests/bench/serve-load.py serve "$U" "$L" "$file" "$REQUESTS" "$CONC" "$OUT/serve_$L.serve")
    kill $sampler 2>/dev/null || true
    kill -TERM $pid
    wait $pid || echo "serve_$L: the daemon exited $? after SIGTERM" >>"$OUT/notes"
    pid=
    echo "bench: one-shot $L: $ONESHOT runvm --lang processes at concurrency $CONC" >&2
    line1=$(python3 tests/bench/serve-load.py oneshot "$B/bin/runvm" "$L" "$file" "$ONESHOT" "$CONC" "$OUT/serve_$L.oneshot")
    python3 - "$L" "$line" "$line1" "$OUT/serve_$L.serve.s" "$W/rss" "$CONC" >>"$OUT/serve.txt" <<'EOF'
import sys
lang, line, line1, lat, rss, conc = sys.argv[1:7]
f = dict(zip(line.split()[::2], line.split()[1::2]))
g = dict(zip(line1.split()[::2], line1.split()[1::2]))
xs = sorted(float(x) for x in open(lat).read().split())
q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
tp, tp1 = float(f["throughput"]), float(g["throughput"])
peaks = [float(x) for x in open(rss).read().split()] or [0]
print("serve_%s_throughput %.2f requests/s (runvm --lang per request: %.3f/s, %s requests; "
      "serve / one-shot %.1fx, target >= 10x)" % (lang, tp, tp1, g["requests"], tp / tp1))
print("serve_%s_latency p50 %.3f s, p99 %.3f s, p99/p50 %.2f (target <= 3), max %.3f s, "
      "%d requests at concurrency %s" % (lang, q(0.5), q(0.99), q(0.99) / q(0.5), xs[-1],
                                          len(xs), conc))
print("serve_%s_failures %s of %s (one-shot: %s of %s)" % (
    lang, f["failures"], f["requests"], g["failures"], g["requests"]))
print("serve_%s_resident_peak %.0f MiB (the daemon and its VM processes, sampled every 2 s)"
      % (lang, max(peaks) / 1048576))
EOF
    plots="$plots $L"
done
# The two latency distributions side by side, a panel per language.
if [ -n "$plots" ] && command -v gnuplot >/dev/null; then
    n=$(echo $plots | wc -w)
    {
        echo "set terminal svg size $((480 * n)),420 dynamic font 'sans,11'"
        echo "set output '$OUT/serve-latency.svg'"
        echo "set multiplot layout 1,$n title 'request to result, hello world, concurrency $CONC: each a fresh VM'"
        echo "set logscale x; set grid; set key bottom right"
        echo "set xlabel 'seconds'; set ylabel 'fraction of requests'; set yrange [0:1]"
        for L in $plots; do
            for k in serve oneshot; do
                sort -n "$OUT/serve_$L.$k.s" | awk '{a[NR]=$1} END {for (i = 1; i <= NR; i++) print a[i], i / NR}' \
                    >"$W/$L.$k.cdf"
            done
            echo "set title '$L'"
            echo "plot '$W/$L.serve.cdf' using 1:2 with steps lw 2 title 'runvm serve', \\"
            echo "     '$W/$L.oneshot.cdf' using 1:2 with steps lw 2 title 'runvm --lang per request'"
        done
        echo "unset multiplot"
    } >"$W/plot.gp"
    gnuplot "$W/plot.gp" || echo "serve: gnuplot failed" >>"$OUT/notes"
fi
cat "$OUT/serve.txt" >&2
