#!/usr/bin/env bash
# Snapshots at the low level: --snapshot-out DIR boots an initramfs whose
# /init is runvm-agent to its HELLO and writes DIR; --restore DIR --exec
# runs a program in a VM restored from it. Checked: the output and status
# are a cold boot's; two restores at once get their own random bytes and
# the right time; a misbehaving restored guest is stopped at --timeout; a
# corrupt, truncated or missing snapshot is refused with 125 and why.
# Figures: the whole restore-and-run process against a cold --exec of the
# same initramfs, side by side.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
agent_initrd "$T/agent.cpio.gz" "" sh echo cat head od date sleep true

run() { # NAME ARGS... : stdout in $T/NAME.out, stderr in .err, rc in .rc, seconds in .secs
    local name=$1 rc=0 start; shift
    start=$(date +%s.%N)
    timeout 300 "$RUNVM" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$(date +%s.%N) - $start" | bc >"$T/$name.secs"
    echo "$rc" >"$T/$name.rc"
}
want() { # NAME RC
    local got; got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] || { echo "--- stdout"; head -c 2000 "$T/$1.out"; echo "--- stderr"; tail -20 "$T/$1.err"; fail "$1: status $got, want $2"; }
}

SNAP=$T/snap
rm -rf "$SNAP"
run take --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 --snapshot-out "$SNAP"
want take 0
[ -s "$SNAP/state" ] && [ -f "$SNAP/memory" ] || fail "snapshot: files missing: $(ls -l "$SNAP")"
[ "$(stat -c %a "$SNAP/memory")" = 400 ] && [ "$(stat -c %a "$SNAP")" = 700 ] || fail "snapshot: modes $(stat -c %a "$SNAP" "$SNAP/memory"), want 700 and 400"
echo "ok: snapshot taken in $(cat "$T/take.secs") s: state $(stat -c %s "$SNAP/state") bytes, memory $(($(stat -c %s "$SNAP/memory") >> 20)) MiB ($(du -k "$SNAP/memory" | cut -f1) KiB on disk)"
run again --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 --snapshot-out "$SNAP"
want again 125
grep -q 'holds a snapshot already' "$T/again.err" || fail "second --snapshot-out over the first: $(cat "$T/again.err")"
echo "ok: a directory that holds a snapshot is not written over"

run hello --restore "$SNAP" --exec -- sh -c 'echo hello from a restored guest; echo err >&2; exit 3'
want hello 3
[ "$(cat "$T/hello.out")" = "hello from a restored guest" ] || fail "restored: stdout $(cat "$T/hello.out")"
grep -qx err "$T/hello.err" || fail "restored: stderr $(cat "$T/hello.err")"
echo "ok: restored VM runs a program: output and status 3 in $(cat "$T/hello.secs") s"

# Two restores of one snapshot at once: their own random bytes (the
# kernel's RNG reseeded from the host) and the host's time, not the
# snapshot's.
sleep 3
for i in 1 2; do
    run "rnd$i" --restore "$SNAP" --exec -- sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; date +%s' &
done
wait
for i in 1 2; do want "rnd$i" 0; done
r1=$(head -1 "$T/rnd1.out") r2=$(head -1 "$T/rnd2.out")
[ ${#r1} = 64 ] && [ ${#r2} = 64 ] || fail "random bytes: '$r1' '$r2'"
[ "$r1" != "$r2" ] || fail "two restores read the same random bytes: $r1"
now=$(date +%s)
for i in 1 2; do
    t=$(sed -n 2p "$T/rnd$i.out")
    d=$((now - t)); d=${d#-}
    [ "$d" -le 30 ] || fail "restore $i: guest clock $t, host $now"
done
echo "ok: two restores at once: different random bytes, clocks within 30 s of the host's"

run loop --restore "$SNAP" --timeout 3 --exec -- sleep 1000
want loop 124
echo "ok: a restored guest that runs too long stops at --timeout (124)"

# Two vCPUs: both saved and restored (the second one idle in the guest's
# scheduler, its LAPIC timer armed), and both run after the restore.
rm -rf "$T/snap2"
run take2 --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 --cpus 2 --snapshot-out "$T/snap2"
want take2 0
run two --restore "$T/snap2" --exec -- sh -c 'cat /sys/devices/system/cpu/online; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done & while [ $i -lt 2000 ]; do i=$((i+1)); done; wait; echo both'
want two 0
[ "$(cat "$T/two.out")" = "$(printf '0-1\nboth')" ] || fail "two vCPUs restored: $(cat "$T/two.out")"
echo "ok: a snapshot of two vCPUs restores and runs on both"

# Broken snapshots: refused with 125 and why, never half-used.
BAD=$T/bad
rm -rf "$BAD" && cp -a "$SNAP" "$BAD" && chmod u+w "$BAD/state"
printf '\xff' | dd of="$BAD/state" bs=1 seek=300 conv=notrunc status=none
run corrupt --restore "$BAD" --exec -- true
want corrupt 125
grep -qi 'checksum' "$T/corrupt.err" || fail "corrupt: $(cat "$T/corrupt.err")"
rm -rf "$BAD" && cp -a "$SNAP" "$BAD" && chmod u+w "$BAD/memory"
truncate -s 1M "$BAD/memory"
run short --restore "$BAD" --exec -- true
want short 125
grep -q 'memory file is' "$T/short.err" || fail "truncated memory: $(cat "$T/short.err")"
run none --restore "$T/no-such-snapshot" --exec -- true
want none 125
rm -rf "$BAD" && cp -a "$SNAP" "$BAD" && chmod u+w "$BAD/state" && truncate -s 100 "$BAD/state"
run trunc --restore "$BAD" --exec -- true
want trunc 125
echo "ok: corrupt, truncated and missing snapshots refused with 125: $(head -1 "$T/corrupt.err")"

# Side by side: a cold --exec of the same initramfs against a restore.
run cold --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 --exec -- true
want cold 0
run warm --restore "$SNAP" --exec -- true
want warm 0
c=$(cat "$T/cold.secs") w=$(cat "$T/warm.secs")
echo "FIGURE snapshot restore+run process vs cold --exec (nested KVM, 256 MiB): restore $w s, cold $c s, ratio $(echo "scale=3; $w / $c" | bc)"
