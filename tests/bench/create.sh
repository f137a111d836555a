#!/usr/bin/env bash
# Create rate: VMs booted to testinit's sentinel per second, runvm against
# QEMU microvm (the same kernel, initramfs and command line as
# tests/bench/boot.sh), N interleaved samples of each:
#   seq   K VMs one after another (each launched once the one before has
#         exited); rate = K / (first launch to last sentinel)
#   par2  two VMs launched at once; rate = 2 / (launch to the later
#         sentinel)
# Writes one rate (VMs/s) a line to OUT/create_rate_{seq,par2}.{runvm,peer}.vms.
#
# Under a hypervisor (the nested KVM host) QEMU's par2 is not run unless
# BENCH_PAR2_PEER=1: two QEMU microvm guests at once there have hung the L1
# kernel (soft lockups on both its CPUs, no progress for minutes), which
# would take every other figure with it. The skip is noted in OUT/notes.
#
# usage: tests/bench/create.sh B=BUILD_DIR N=RUNS OUT=DIR [K=2]
# Needs /dev/kvm (tests/bench/run provides it).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
B=build N=3 OUT= K=2
for a in "$@"; do
    case $a in
    B=*) B=${a#B=} ;; N=*) N=${a#N=} ;; OUT=*) OUT=${a#OUT=} ;; K=*) K=${a#K=} ;;
    *) echo "usage: $0 B=BUILD_DIR N=RUNS OUT=DIR [K=2]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "create.sh: OUT= missing" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/runvm-create.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/root"
cp "$B/tests/testinit" "$T/root/init"
scripts/mkcpio.sh "$T/root" "$T/initrd.cpio.gz"
cp "$B/kernel/bzImage" "$T/bzImage"
K_=$T/bzImage I=$T/initrd.cpio.gz
APPEND="panic=-1 quiet"
RUNVM=("$B/bin/runvm" --kernel "$K_" --initrd "$I" --console --mem 256
    --cpus 1 --cmdline "reboot=k $APPEND")
QEMU=(qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=off
    -m 256 -smp 1 -nodefaults -no-user-config -nographic -serial stdio
    -kernel "$K_" -initrd "$I" -append "console=ttyS0 reboot=t $APPEND"
    -no-reboot)

# boot_one LOG CMD...: runs one VM to its exit; prints the EPOCHREALTIME
# of its sentinel line (nothing if it never came).
boot_one() {
    local log=$1; shift
    timeout -k 10 120 "$@" </dev/null 2>&1 | {
        t=
        while IFS= read -r line; do
            if [ -z "$t" ] && [[ $line == *RUNVM-TESTINIT-OK* ]]; then t=$EPOCHREALTIME; fi
            printf '%s\n' "$line" >>"$log"
        done
        echo "$t"
    }
}
failed() { echo "create.sh: $1 did not reach its sentinel:" >&2; tail -20 "$2" >&2; exit 1; }

seq_rate() { # NAME CMD...: K VMs one after another
    local name=$1 start t j; shift
    start=$EPOCHREALTIME
    for j in $(seq "$K"); do
        : >"$T/$name.$j.log"
        t=$(boot_one "$T/$name.$j.log" "$@")
        [ -n "$t" ] || failed "$name seq VM $j" "$T/$name.$j.log"
    done
    echo "scale=4; $K / ($t - $start)" | bc
}
par2_rate() { # NAME CMD...: two VMs at once
    local name=$1 start t1 t2; shift
    : >"$T/$name.p1.log"; : >"$T/$name.p2.log"
    start=$EPOCHREALTIME
    boot_one "$T/$name.p1.log" "$@" >"$T/$name.p1.t" &
    boot_one "$T/$name.p2.log" "$@" >"$T/$name.p2.t" &
    wait
    t1=$(cat "$T/$name.p1.t") t2=$(cat "$T/$name.p2.t")
    [ -n "$t1" ] || failed "$name par2 VM 1" "$T/$name.p1.log"
    [ -n "$t2" ] || failed "$name par2 VM 2" "$T/$name.p2.log"
    echo "scale=4; 2 / ($(printf '%s\n' "$t1" "$t2" | sort -n | tail -1) - $start)" | bc
}

mkdir -p "$OUT"
par2_peer=1
if grep -qw hypervisor /proc/cpuinfo && [ "${BENCH_PAR2_PEER:-0}" != 1 ]; then
    par2_peer=0
    echo "create_rate_par2: QEMU peer not run in the nested host (two QEMU guests at once hung its L1 kernel; BENCH_PAR2_PEER=1 runs it)" >>"$OUT/notes"
fi
for f in create_rate_seq.runvm create_rate_seq.peer create_rate_par2.runvm create_rate_par2.peer; do
    : >"$OUT/$f.vms"
done
for i in $(seq "$N"); do
    seq_rate runvm "${RUNVM[@]}" >>"$OUT/create_rate_seq.runvm.vms"
    seq_rate qemu "${QEMU[@]}" >>"$OUT/create_rate_seq.peer.vms"
    par2_rate runvm "${RUNVM[@]}" >>"$OUT/create_rate_par2.runvm.vms"
    [ $par2_peer = 0 ] || par2_rate qemu "${QEMU[@]}" >>"$OUT/create_rate_par2.peer.vms"
    echo "create.sh: sample $i: seq runvm $(tail -1 "$OUT/create_rate_seq.runvm.vms")" \
        "qemu $(tail -1 "$OUT/create_rate_seq.peer.vms"), par2 runvm" \
        "$(tail -1 "$OUT/create_rate_par2.runvm.vms") qemu" \
        "$(tail -1 "$OUT/create_rate_par2.peer.vms" || true) VMs/s" >&2
done
