#!/usr/bin/env bash
# Console throughput guest -> host through virtio-console (/dev/hvc0),
# runvm (--vconsole stdio) against QEMU microvm (virtio-serial-device +
# virtconsole to a file), the same kernel and init (build/tests/hvc_bulk
# with hvctest=g2h:BYTES, as tests/integration/20-virtio-console.t runs
# it), N interleaved runs. The rate is the guest's own: BYTES over the time
# its writes to hvc0 took (guest clock), every byte checked on the host
# once the VM is done: both VMMs write to a file, so that neither waits on
# a checker reading a pipe.
# Writes MB/s, one a line, to OUT/console_g2h.{runvm,peer}.mbs.
#
# usage: tests/bench/console.sh B=BUILD_DIR N=RUNS OUT=DIR
#        HVC_BYTES: bytes per run (default 64 MiB, 8 MiB under a hypervisor)
# Needs /dev/kvm (tests/bench/run provides it).
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
[ -n "$OUT" ] || { echo "console.sh: OUT= missing" >&2; exit 2; }
BULK=$B/tests/hvc_bulk
[ -x "$BULK" ] || { echo "console.sh: $BULK missing (make test-progs)" >&2; exit 1; }
if grep -qw hypervisor /proc/cpuinfo; then BYTES=${HVC_BYTES:-8388608}; else BYTES=${HVC_BYTES:-67108864}; fi
T=$(mktemp -d "${TMPDIR:-/tmp}/runvm-console.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/root/proc" "$T/root/dev"
cp "$BULK" "$T/root/init"
scripts/mkcpio.sh "$T/root" "$T/hvc.cpio.gz"
cp "$B/kernel/bzImage" "$T/bzImage"
APPEND="panic=-1 quiet hvctest=g2h:$BYTES"

# mbs RESULT-LINE: MB/s from the guest's "HVC-RESULT g2h ... ns=NS" line.
mbs() {
    local ns
    ns=$(sed -n 's/.* ns=\([0-9]*\).*/\1/p' <<<"$1")
    [ -n "$ns" ] && [ "$ns" -gt 0 ] || return 1
    echo "scale=3; $BYTES * 1000 / $ns" | bc
}
fail() { echo "console.sh: $1" >&2; tail -20 "$2" >&2; exit 1; }

mkdir -p "$OUT"
: >"$OUT/console_g2h.runvm.mbs"; : >"$OUT/console_g2h.peer.mbs"
echo "$BYTES" >"$OUT/console_g2h.bytes"
for i in $(seq "$N"); do
    rc=0
    timeout -k 10 600 "$B/bin/runvm" --kernel "$T/bzImage" --initrd "$T/hvc.cpio.gz" \
        --mem 256 --cpus 1 --cmdline "reboot=k $APPEND" --vconsole stdio \
        </dev/null >"$T/runvm.bin" 2>"$T/runvm.err" || rc=$?
    "$BULK" check "$BYTES" <"$T/runvm.bin" >"$T/runvm.out" 2>&1 || true
    rm -f "$T/runvm.bin"
    grep -q "^CHECK ok bytes=$BYTES" "$T/runvm.out" ||
        fail "runvm run $i: pattern not intact (status $rc)" "$T/runvm.err"
    line=$(grep -a '^HVC-RESULT g2h' "$T/runvm.out" | grep 'ok=1') ||
        fail "runvm run $i: no ok result line" "$T/runvm.out"
    mbs "$line" >>"$OUT/console_g2h.runvm.mbs" || fail "runvm run $i: bad line $line" "$T/runvm.out"

    rm -f "$T/qemu.bin"
    timeout -k 10 600 qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=off \
        -m 256 -smp 1 -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$T/bzImage" -initrd "$T/hvc.cpio.gz" \
        -append "reboot=t $APPEND" \
        -device virtio-serial-device -chardev "file,id=vc,path=$T/qemu.bin" \
        -device virtconsole,chardev=vc </dev/null >"$T/qemu.log" 2>&1 || true
    "$BULK" check "$BYTES" <"$T/qemu.bin" >"$T/qemu.out" 2>&1 || true
    # A failed peer run is no figure of runvm's: it is left out, with a
    # note in the report, and the other runs still count.
    qemu=failed
    if grep -q "^CHECK ok bytes=$BYTES" "$T/qemu.out" &&
        line=$(grep -a '^HVC-RESULT g2h' "$T/qemu.out" | grep 'ok=1') &&
        mbs "$line" >>"$OUT/console_g2h.peer.mbs"; then
        qemu="$(tail -1 "$OUT/console_g2h.peer.mbs") MB/s"
    else
        echo "console_g2h: QEMU run $i of $N did not deliver the pattern and its" \
            "result line; left out" >>"$OUT/notes"
        tail -5 "$T/qemu.log" >&2
    fi
    echo "console.sh: run $i: runvm $(tail -1 "$OUT/console_g2h.runvm.mbs") MB/s, qemu $qemu" >&2
done
