#!/usr/bin/env bash
# Snapshot figures (#21), side by side in one KVM environment, for an
# initramfs holding only runvm-agent and busybox (the --exec floor) and,
# where its image is built, Go:
#   ready        runvm start to the agent ready for a RUN (exec-stats'
#                "start to RUN"): restored vs cold boot, N interleaved runs
#   process      a whole `--restore DIR --exec -- true` vs a cold `--exec`
#   ram          restore to ready of a 256 MiB guest vs a 2048 MiB one
#   faults       runvm's minor page faults, restore+run vs cold
#   mem1         an idle restored VM: runvm's anonymous memory (its own,
#                guest pages it wrote included) and its PSS
#   pss8         eight VMs restored from one snapshot at once: their
#                summed PSS against one cold-booted VM's RSS
#   rate         restores (to exit) per second, one after another and two
#                at a time
#   go           `runvm --lang go hello.go` restored vs --no-snapshot, and
#                vs the same program in an already booted VM (--exec with
#                RUNVM_EXEC_REPEAT: the second of two runs)
# Writes "NAME value unit" lines to OUT/snapshot.txt and prints them.
#
# usage: tests/bench/snapshot.sh B=BUILD_DIR N=RUNS OUT=DIR
# Needs /dev/kvm (tests/bench/run, or scripts/with-kvm).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build N=3 OUT=
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; N=*) N=${a#N=} ;; OUT=*) OUT=${a#OUT=} ;;
    *) echo "usage: $0 B=BUILD_DIR N=RUNS OUT=DIR" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "snapshot.sh: OUT= missing" >&2; exit 2; }
mkdir -p "$OUT"
T=$(mktemp -d "${TMPDIR:-/tmp}/runvm-bench-snap.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
R=$B/bin/runvm
BUSYBOX=$(command -v busybox)
mkdir -p "$T/root/bin"
cp "$B/bin/runvm-agent" "$T/root/init"
cp "$BUSYBOX" "$T/root/bin/busybox"
for c in sh true sleep; do ln -s busybox "$T/root/bin/$c"; done
scripts/mkcpio.sh "$T/root" "$T/agent.cpio.gz" >/dev/null
cp "$B/kernel/bzImage" "$T/bzImage"
BOOT=(--kernel "$T/bzImage" --initrd "$T/agent.cpio.gz")
res=$OUT/snapshot.txt
: >"$res"
fig() { echo "$*" | tee -a "$res"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

"$R" "${BOOT[@]}" --mem 256 --snapshot-out "$T/s256" 2>/dev/null
"$R" "${BOOT[@]}" --mem 2048 --snapshot-out "$T/s2048" 2>/dev/null

ready() { # ARGS... : ms from runvm start to the agent ready
    RUNVM_EXEC_STATS=1 "$R" "$@" --timeout 60 --exec -- true 2>&1 >/dev/null </dev/null |
        sed -n 's/.*exec-stats: start to RUN \([0-9.]*\) ms.*/\1/p'
}
for i in $(seq "$N"); do
    ready --restore "$T/s256" >>"$T/ready.restore"
    ready "${BOOT[@]}" --mem 256 >>"$T/ready.cold"
    ready --restore "$T/s2048" >>"$T/ready.2048"
done
rr=$(median <"$T/ready.restore") rc=$(median <"$T/ready.cold") r2=$(median <"$T/ready.2048")
fig "ready_restore_ms $rr"
fig "ready_cold_ms $rc"
fig "ready_ratio $(echo "scale=4; $rr / $rc" | bc)"
fig "ready_restore_2048_ms $r2"
fig "ready_2048_vs_256 $(echo "scale=3; $r2 / $rr" | bc)"

proc() { # ARGS... : seconds of a whole runvm process, minor faults in $T/flt
    local s=$EPOCHREALTIME
    /usr/bin/time -f %R -o "$T/flt" "$R" "$@" --timeout 60 --exec -- true >/dev/null 2>&1 </dev/null
    echo "($EPOCHREALTIME - $s) * 1000" | bc
}
: >"$T/p.restore"; : >"$T/p.cold"; : >"$T/f.restore"; : >"$T/f.cold"
for i in $(seq "$N"); do
    proc --restore "$T/s256" >>"$T/p.restore"; cat "$T/flt" >>"$T/f.restore"
    proc "${BOOT[@]}" --mem 256 >>"$T/p.cold"; cat "$T/flt" >>"$T/f.cold"
done
pr=$(median <"$T/p.restore") pc=$(median <"$T/p.cold")
fig "process_restore_ms $pr"
fig "process_cold_ms $pc"
fig "process_ratio $(echo "scale=4; $pr / $pc" | bc)"
fig "faults_restore $(median <"$T/f.restore")"
fig "faults_cold $(median <"$T/f.cold")"

# Memory of idle VMs: each runs `sleep`, its agent re-announced.
rss_of() { awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup"; }
anon_of() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup"; }
pss_of() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
idle() { # ARGS... : starts an idle VM, echoes runvm's pid once its program runs
    local f=$T/idle.$BASHPID # (a background job's own $BASHPID differs)
    "$R" "$@" --timeout 120 --exec -- sh -c 'echo VM-UP; sleep 100' >"$f" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 600); do grep -q VM-UP "$f" 2>/dev/null && break; sleep 0.1; done
    echo $pid
}
p=$(idle --restore "$T/s256")
sleep 1
fig "idle_restored_anon_kib $(anon_of "$p")"
fig "idle_restored_pss_kib $(pss_of "$p")"
kill "$p" 2>/dev/null || true; sleep 1
p=$(idle "${BOOT[@]}" --mem 256)
sleep 1
cold_rss=$(rss_of "$p")
fig "idle_cold_rss_kib $cold_rss"
kill "$p" 2>/dev/null || true; sleep 1
pids=
for i in $(seq 8); do pids="$pids $(idle --restore "$T/s256")"; done
sleep 2
sum=0
for p in $pids; do sum=$((sum + $(pss_of "$p"))); done
fig "pss8_sum_kib $sum"
fig "pss8_vs_one_cold_rss $(echo "scale=3; $sum / $cold_rss" | bc)"
kill $pids 2>/dev/null || true

K=$((N * 2))
s=$EPOCHREALTIME
for i in $(seq $K); do "$R" --restore "$T/s256" --timeout 60 --exec -- true >/dev/null 2>&1 </dev/null; done
fig "rate_seq_per_s $(echo "scale=3; $K / ($EPOCHREALTIME - $s)" | bc)"
s=$EPOCHREALTIME
for i in $(seq $N); do
    "$R" --restore "$T/s256" --timeout 60 --exec -- true >/dev/null 2>&1 </dev/null &
    "$R" --restore "$T/s256" --timeout 60 --exec -- true >/dev/null 2>&1 </dev/null
    wait
done
fig "rate_par2_per_s $(echo "scale=3; $K / ($EPOCHREALTIME - $s)" | bc)"

if "$R" --list-langs 2>/dev/null | awk '$1 == "go" && $3 == "yes" && $NF !~ /\)$/ {f=1} END {exit !f}'; then
    export RUNVM_SNAPSHOTS=$T/store
    "$R" --lang go examples/hello.go >/dev/null 2>&1 </dev/null # takes it
    : >"$T/g.restore"; : >"$T/g.cold"
    for i in $(seq "$N"); do
        s=$EPOCHREALTIME; "$R" --lang go examples/hello.go >/dev/null 2>&1 </dev/null
        echo "($EPOCHREALTIME - $s) * 1000" | bc >>"$T/g.restore"
        s=$EPOCHREALTIME; "$R" --lang go --no-snapshot examples/hello.go >/dev/null 2>&1 </dev/null
        echo "($EPOCHREALTIME - $s) * 1000" | bc >>"$T/g.cold"
    done
    gr=$(median <"$T/g.restore") gc=$(median <"$T/g.cold")
    fig "go_hello_restored_ms $gr"
    fig "go_hello_cold_ms $gc"
    fig "go_hello_restored_vs_cold $(echo "scale=3; $gr / $gc" | bc)"
else
    echo "snapshot.sh: no go image: go figures skipped" >&2
fi
