#!/usr/bin/env bash
# What runvm's own sandbox costs (#17): the same runvm with its seccomp
# filters on (the default) and off (RUNVM_SECCOMP=off), N interleaved runs
# of each of
#   sandbox_rtt  an empty RUN's round trip on a booted VM (the median of
#                RUNVM_EXEC_REPEAT=50 in one --exec VM, busybox true): the
#                event loop's and vCPUs' filtered syscalls on every message
#   sandbox_g2h  guest -> host MB/s through /dev/hvc0 (build/tests/hvc_bulk,
#                as console.sh): a filtered write and ioctl per buffer
#   sandbox_write, sandbox_ioctl
#                one system call with and without the filter, no VM:
#                write(2) under the event loop's, ioctl(KVM_RUN) under the
#                vCPUs' (build/bench-bin/seccomp-cost, ns a call)
# Writes OUT/sandbox_{rtt,g2h}.{on,off}.{ms,mbs} and
# OUT/sandbox_{write,ioctl}.{on,off}.ns, one figure a line.
#
# usage: tests/bench/sandbox.sh B=BUILD_DIR N=RUNS OUT=DIR
# Needs /dev/kvm (tests/bench/run provides it) and a static busybox.
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
[ -n "$OUT" ] || { echo "sandbox.sh: OUT= missing" >&2; exit 2; }
BUSYBOX=$(command -v busybox || true)
case $(file -L "$BUSYBOX" 2>/dev/null) in
*statically*) ;;
*) echo "sandbox.sh: no static busybox (apt-get install busybox-static)" >&2; exit 1 ;;
esac
if grep -qw hypervisor /proc/cpuinfo; then BYTES=${HVC_BYTES:-8388608}; else BYTES=${HVC_BYTES:-67108864}; fi
T=$(mktemp -d "${TMPDIR:-/tmp}/runvm-sandbox.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/agent/bin" "$T/hvc/proc" "$T/hvc/dev"
cp "$B/bin/runvm-agent" "$T/agent/init"
cp "$BUSYBOX" "$T/agent/bin/busybox"
for c in sh true; do ln -s busybox "$T/agent/bin/$c"; done
scripts/mkcpio.sh "$T/agent" "$T/agent.cpio.gz"
cp "$B/tests/hvc_bulk" "$T/hvc/init"
scripts/mkcpio.sh "$T/hvc" "$T/hvc.cpio.gz"
cp "$B/kernel/bzImage" "$T/bzImage"
fail() { echo "sandbox.sh: $1" >&2; tail -20 "$2" >&2; exit 1; }

# rtt on|off: the median round trip of one VM's 50 RUNs, in ms.
rtt() {
    local seccomp=$1 rc=0 line
    RUNVM_SECCOMP=$seccomp RUNVM_EXEC_REPEAT=50 timeout 600 "$B/bin/runvm" \
        --kernel "$T/bzImage" --initrd "$T/agent.cpio.gz" --mem 256 --timeout 500 \
        --exec -- /bin/true </dev/null >"$T/rtt.out" 2>"$T/rtt.err" || rc=$?
    line=$(grep 'exec-bench:' "$T/rtt.err") || fail "round trip, seccomp $seccomp: status $rc" "$T/rtt.err"
    sed -n 's/.*round trip median \([0-9.]*\) ms.*/\1/p' <<<"$line"
}

# g2h on|off: MB/s by the guest's clock, every byte checked.
g2h() {
    local seccomp=$1 rc=0 line ns
    RUNVM_SECCOMP=$seccomp timeout -k 10 600 "$B/bin/runvm" --kernel "$T/bzImage" \
        --initrd "$T/hvc.cpio.gz" --mem 256 --cpus 1 \
        --cmdline "reboot=k panic=-1 quiet hvctest=g2h:$BYTES" --vconsole stdio \
        </dev/null >"$T/g2h.bin" 2>"$T/g2h.err" || rc=$?
    "$B/tests/hvc_bulk" check "$BYTES" <"$T/g2h.bin" >"$T/g2h.out" 2>&1 || true
    grep -q "^CHECK ok bytes=$BYTES" "$T/g2h.out" ||
        fail "g2h, seccomp $seccomp: pattern not intact (status $rc)" "$T/g2h.err"
    line=$(grep -a '^HVC-RESULT g2h' "$T/g2h.out" | grep 'ok=1') ||
        fail "g2h, seccomp $seccomp: no result line" "$T/g2h.out"
    ns=$(sed -n 's/.* ns=\([0-9]*\).*/\1/p' <<<"$line")
    echo "scale=3; $BYTES * 1000 / $ns" | bc
}

mkdir -p "$OUT"
for f in rtt.on.ms rtt.off.ms g2h.on.mbs g2h.off.mbs write.on.ns write.off.ns \
    ioctl.on.ns ioctl.off.ns; do : >"$OUT/sandbox_$f"; done
for i in $(seq "$N"); do
    # Alternate which goes first, so neither always finds a warmer host.
    if [ $((i % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for s in $order; do
        rtt "$s" >>"$OUT/sandbox_rtt.$s.ms"
        g2h "$s" >>"$OUT/sandbox_g2h.$s.mbs"
    done
    # "seccomp_cost write off NS on NS", then ioctl.
    "$B/bench-bin/seccomp-cost" >"$T/cost.out" || fail "seccomp-cost failed" "$T/cost.out"
    while read -r _ what _ off _ on; do
        echo "$off" >>"$OUT/sandbox_$what.off.ns"
        echo "$on" >>"$OUT/sandbox_$what.on.ns"
    done <"$T/cost.out"
    echo "sandbox: run $i of $N: round trip on $(tail -1 "$OUT/sandbox_rtt.on.ms") ms," \
        "off $(tail -1 "$OUT/sandbox_rtt.off.ms") ms; g2h on" \
        "$(tail -1 "$OUT/sandbox_g2h.on.mbs"), off $(tail -1 "$OUT/sandbox_g2h.off.mbs") MB/s" >&2
done
