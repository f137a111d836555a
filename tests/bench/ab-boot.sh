#!/usr/bin/env bash
# Two runvm builds side by side: boot (launch to exit of testinit's boot,
# which reboots after its sentinel) and VMM overhead (--boot-timer's peak
# RSS minus guest RAM resident), A and B interleaved N times each in ONE
# KVM environment (the nested host where /dev/kvm is not usable). For a
# change that should not cost anything: build the old tree's runvm, then
#   tests/bench/ab-boot.sh OLD/build/bin/runvm build/bin/runvm 15
# Prints each run and the medians; reports, never judges.
#
# usage: tests/bench/ab-boot.sh RUNVM_A RUNVM_B [N] [B=BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 RUNVM_A RUNVM_B [N] [B=BUILD_DIR]" >&2; exit 2; }
A=$1 Bin=$2 N=${3:-10} B=$top/build
for a in "${@:4}"; do
    case $a in B=*) B=${a#B=} ;; *) echo "usage: $0 RUNVM_A RUNVM_B [N] [B=BUILD_DIR]" >&2; exit 2 ;; esac
done
case $N in '' | *[!0-9]* | 0) echo "ab-boot: N must be a positive integer" >&2; exit 2 ;; esac
W=$B/bench/ab
if [ "${AB_INSIDE:-0}" != 1 ]; then
    for f in "$A" "$Bin" "$B/kernel/bzImage" "$B/tests/testinit"; do
        [ -e "$f" ] || { echo "ab-boot: $f missing (make all test-progs kernel)" >&2; exit 1; }
    done
    # Inside the nested host only the source tree is shared: copy there.
    rm -rf "$W" && mkdir -p "$W/root"
    cp "$A" "$W/a"; cp "$Bin" "$W/b"; cp "$B/kernel/bzImage" "$W/k"
    cp "$B/tests/testinit" "$W/root/init"
    "$top/scripts/mkcpio.sh" "$W/root" "$W/i.cpio.gz"
    if ! "$top/scripts/kvm-usable" -q; then
        exec "$top/tests/kvmhost/kvmhost" --mem 2048 --smp 2 --timeout 1800 -- \
            env AB_INSIDE=1 "$top/tests/bench/ab-boot.sh" "$W/a" "$W/b" "$N" "B=$B"
    fi
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cp "$W/a" "$T/a"; cp "$W/b" "$T/b"; cp "$W/k" "$T/k"; cp "$W/i.cpio.gz" "$T/i"
for i in $(seq "$N"); do
    for v in a b; do
        s=$(date +%s%N)
        rc=0
        "$T/$v" --kernel "$T/k" --initrd "$T/i" --mem 256 \
            --cmdline "panic=-1 quiet" --boot-timer --timeout 120 \
            >/dev/null 2>"$T/err" || rc=$?
        e=$(date +%s%N)
        [ $rc = 0 ] || { echo "ab-boot: runvm $v exited $rc:" >&2; cat "$T/err" >&2; exit 1; }
        kib=$(sed -n 's/.*VMM overhead \(-\?[0-9]*\) KiB.*/\1/p' "$T/err")
        echo "run $i $v boot_ms $(((e - s) / 1000000)) overhead_kib $kib"
    done
done | tee "$T/runs"
python3 - "$T/runs" <<'PY'
import statistics, sys
runs = {'a': {'ms': [], 'kib': []}, 'b': {'ms': [], 'kib': []}}
for line in open(sys.argv[1]):
    f = line.split()
    runs[f[2]]['ms'].append(int(f[4]))
    runs[f[2]]['kib'].append(int(f[6]))
m = {v: (statistics.median(r['ms']), statistics.median(r['kib'])) for v, r in runs.items()}
for v, name in (('a', 'A'), ('b', 'B')):
    r = runs[v]
    print(f"ab-boot: {name}: boot {m[v][0]:.0f} ms ({min(r['ms'])}-{max(r['ms'])}), "
          f"VMM overhead {m[v][1]:.0f} KiB ({min(r['kib'])}-{max(r['kib'])}), n={len(r['ms'])}")
print(f"ab-boot: B/A: boot {m['b'][0] / m['a'][0]:.3f}, overhead {m['b'][1] / m['a'][1]:.3f}")
PY
