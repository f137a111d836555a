#!/usr/bin/env bash
# Boot benchmark: time from launch to testinit's sentinel, runvm against
# QEMU microvm (-cpu host, like runvm's KVM-supported CPUID) booting the
# same kernel and initramfs, interleaved, in the same run; plus runvm's boot
# split (--boot-timer) and its memory overhead (peak RSS minus the guest RAM
# resident in it) beside QEMU's for the same VM (tests/bench/qemu-rss.py:
# its VmHWM minus the guest RAM resident in it, read when the guest has
# reset and the VM is paused). Prints FIGURE lines; with OUT=DIR also
# writes the raw samples there, one value a line (tests/bench/run reads
# them):
#   boot.runvm.ms boot.qemu.ms          launch to sentinel, per run
#   phase.kvm_ready.ms phase.first_kvm_run.ms phase.guest_marker_XX.ms
#                                       runvm --boot-timer, per run
#   rss.runvm.kib rss.qemu.kib          peak RSS minus guest RAM resident
#   rss.runvm_hwm.kib rss.qemu_hwm.kib  the peak RSS itself
#   exits_{kernel,init}.{exits,io_exits,mmio_exits,halt_exits}.n
#                                       runvm's KVM exits (--boot-timer) from
#                                       the first KVM_RUN to testinit's mark,
#                                       and from it to the end, per run;
#   exits.source                        where KVM's counters were read, or
#                                       "unavailable: why"
#
# usage: tests/bench/boot.sh [B=BUILD_DIR] [N=RUNS] [OUT=DIR]
# Runs in the nested KVM host (tests/kvmhost/kvmhost) when /dev/kvm is
# missing. Absolute times there say nothing about real hardware; the ratio
# measured side by side does.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build N=10 OUT=
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;;
    N=*) N=${a#N=} ;;
    OUT=*) OUT=${a#OUT=} ;;
    *) echo "usage: $0 [B=BUILD_DIR] [N=RUNS] [OUT=DIR]" >&2; exit 2 ;;
    esac
done
case $B in /*) ;; *) B=$top/$B ;; esac
if ! scripts/kvm-usable -q; then
    exec tests/kvmhost/kvmhost --mem 2048 --smp 2 --timeout 1800 -- \
        "$top/tests/bench/boot.sh" "B=$B" "N=$N" ${OUT:+"OUT=$OUT"}
fi
for f in "$B/bin/runvm" "$B/kernel/bzImage" "$B/tests/testinit"; do
    [ -e "$f" ] || { echo "boot.sh: $f missing (make all test-progs kernel)" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "boot.sh: qemu-system-x86_64 missing" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/runvm-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/root"
cp "$B/tests/testinit" "$T/root/init"
scripts/mkcpio.sh "$T/root" "$T/initrd.cpio.gz"
# Both VMMs read the kernel from the same local copy (not the shared tree).
cp "$B/kernel/bzImage" "$T/bzImage"
K=$T/bzImage I=$T/initrd.cpio.gz
APPEND="panic=-1 quiet"
MEM=256
QEMU=(qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=off
    -m "$MEM" -smp 1 -nodefaults -no-user-config -nographic -serial stdio
    -kernel "$K" -initrd "$I" -append "console=ttyS0 reboot=t $APPEND")

# time_to_sentinel LOG CMD...: prints ms from launch to the sentinel line
# (empty if it never came); the command's output goes to LOG.
time_to_sentinel() {
    local log=$1; shift
    local start=$EPOCHREALTIME
    timeout 120 "$@" </dev/null 2>&1 | {
        t=
        while IFS= read -r line; do
            if [ -z "$t" ] && [[ $line == *RUNVM-TESTINIT-OK* ]]; then t=$EPOCHREALTIME; fi
            printf '%s\n' "$line" >>"$log"
        done
        [ -n "$t" ] && echo "($t - $start) * 1000" | bc
    }
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "min %.1f, max %.1f", lo, hi}'; }

: >"$T/runvm.ms"; : >"$T/qemu.ms"; : >"$T/overhead.kib"; : >"$T/split"
: >"$T/hwm.kib"; : >"$T/qemu-overhead.kib"; : >"$T/qemu-hwm.kib"; : >"$T/marks"

# qemu_rss: one more (untimed) QEMU boot of the same VM whose guest reset
# pauses it, so its memory can be read at the point runvm reads its own
# (the guest's end); appends to qemu-overhead.kib and qemu-hwm.kib.
qemu_rss() {
    local log=$T/qemu-rss.log sock=$T/qmp.sock pid out rc=0
    rm -f "$sock"
    "${QEMU[@]}" -action reboot=shutdown,shutdown=pause \
        -qmp "unix:$sock,server=on,wait=off" </dev/null >"$log" 2>&1 &
    pid=$!
    out=$(python3 tests/bench/qemu-rss.py "$pid" "$sock" "$MEM" 120) || rc=$?
    [ $rc = 0 ] || kill "$pid" 2>/dev/null || true
    wait "$pid" || true
    if [ $rc != 0 ] || ! grep -q RUNVM-TESTINIT-OK "$log"; then
        echo "boot.sh: qemu memory run failed:" >&2; tail -20 "$log" >&2; return 1
    fi
    set -- $out
    echo "$1" >>"$T/qemu-hwm.kib"
    echo $(($1 - $2)) >>"$T/qemu-overhead.kib"
}
for i in $(seq "$N"); do
    : >"$T/runvm.log"
    ms=$(time_to_sentinel "$T/runvm.log" "$B/bin/runvm" --kernel "$K" --initrd "$I" \
        --console --mem 256 --cpus 1 --boot-timer --cmdline "reboot=k $APPEND") ||
        { echo "boot.sh: runvm run $i failed:" >&2; tail -20 "$T/runvm.log" >&2; exit 1; }
    echo "$ms" >>"$T/runvm.ms"
    sed -n 's/.*VMM overhead \(-*[0-9]*\) KiB.*/\1/p' "$T/runvm.log" >>"$T/overhead.kib"
    sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p' "$T/runvm.log" >>"$T/hwm.kib"
    sed -n 's/.*kvm-ready \([0-9.]*\) ms, first-kvm-run \([0-9.]*\) ms.*/\1 \2/p' "$T/runvm.log" >>"$T/split"
    # "guest-marker 0x01 812.345 ms" → "01 812.345", one line per marker
    grep 'boot-timer:' "$T/runvm.log" | grep -o 'guest-marker 0x[0-9a-f]* [0-9.]*' |
        sed 's/guest-marker 0x//' >>"$T/marks" || true
    # "kvm-exits from SRC, ...: guest-marker 0x01 exits A io_exits B ...;
    # stop exits C ..." → kernel = the first mark's, init = stop - mark.
    line=$(grep -a 'boot-timer: kvm-exits' "$T/runvm.log" || true)
    case $line in
    *'kvm-exits from '*)
        sed 's/.*kvm-exits from \([^,]*\),.*/\1/' <<<"$line" >"$T/exits.source"
        for c in exits io_exits mmio_exits halt_exits; do
            m=$(sed -n "s/.*guest-marker 0x[0-9a-f]* [^;]*\<$c \([0-9]*\).*/\1/p" <<<"${line%%;*}")
            e=$(sed -n "s/.* stop .*\<$c \([0-9]*\).*/\1/p" <<<"$line")
            if [ -n "$m" ] && [ -n "$e" ]; then
                echo "$m" >>"$T/exits_kernel.$c.n"
                echo $((e - m)) >>"$T/exits_init.$c.n"
            fi
        done ;;
    *'kvm-exits '*) sed 's/.*kvm-exits //' <<<"$line" >"$T/exits.source" ;;
    esac
    : >"$T/qemu.log"
    ms=$(time_to_sentinel "$T/qemu.log" "${QEMU[@]}" -no-reboot) ||
        { echo "boot.sh: qemu run $i failed:" >&2; tail -20 "$T/qemu.log" >&2; exit 1; }
    echo "$ms" >>"$T/qemu.ms"
    qemu_rss || exit 1
done
r=$(median <"$T/runvm.ms") q=$(median <"$T/qemu.ms")
echo "FIGURE boot to sentinel, runvm: median $(printf %.1f "$r") ms of $N ($(minmax <"$T/runvm.ms"))"
echo "FIGURE boot to sentinel, qemu microvm: median $(printf %.1f "$q") ms of $N ($(minmax <"$T/qemu.ms"))"
echo "FIGURE boot to sentinel, runvm / qemu: $(echo "scale=3; $r / $q" | bc) (target <= 0.5)"
echo "FIGURE runvm boot split (median): kvm-ready $(cut -d' ' -f1 "$T/split" | median) ms, first KVM_RUN $(cut -d' ' -f2 "$T/split" | median) ms after runvm start"
echo "FIGURE runvm memory overhead (VmHWM - guest RAM resident): median $(median <"$T/overhead.kib") KiB (target <= 2048)"
echo "FIGURE qemu microvm memory overhead (VmHWM - guest RAM resident): median $(median <"$T/qemu-overhead.kib") KiB"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$T/runvm.ms" "$OUT/boot.runvm.ms"
    cp "$T/qemu.ms" "$OUT/boot.qemu.ms"
    cut -d' ' -f1 "$T/split" >"$OUT/phase.kvm_ready.ms"
    cut -d' ' -f2 "$T/split" >"$OUT/phase.first_kvm_run.ms"
    while read -r v ms; do echo "$ms" >>"$OUT/phase.guest_marker_$v.ms"; done <"$T/marks"
    cp "$T/overhead.kib" "$OUT/rss.runvm.kib"
    cp "$T/hwm.kib" "$OUT/rss.runvm_hwm.kib"
    cp "$T/qemu-overhead.kib" "$OUT/rss.qemu.kib"
    cp "$T/qemu-hwm.kib" "$OUT/rss.qemu_hwm.kib"
    for f in "$T"/exits*; do [ -e "$f" ] && cp "$f" "$OUT/"; done
fi
