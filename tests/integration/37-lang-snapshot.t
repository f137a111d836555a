#!/usr/bin/env bash
# test-timeout: 600
# runvm --lang restores from its image's snapshot: the first run of an
# image takes it as it boots (saying so), later ones restore from it and
# print the same; a corrupt one is said, taken again and the run goes on;
# an unwritable store gives a warning and a cold boot; --no-snapshot boots
# cold. Figures: one-shot Go hello restored against the same cold and
# against a run on an already booted VM (--exec repeat), side by side.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
image_require go
export RUNVM_SNAPSHOTS=$T/snapshots
rm -rf "$RUNVM_SNAPSHOTS"

lang() { # NAME ARGS... : stdout/stderr/rc in $T/NAME.{out,err,rc}, seconds in .secs
    local name=$1 rc=0 start; shift
    start=$(date +%s.%N)
    timeout 600 "$RUNVM" --lang go "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$(date +%s.%N) - $start" | bc >"$T/$name.secs"
    echo "$rc" >"$T/$name.rc"
}
want() { # NAME RC OUT
    local got; got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] && [ "$(cat "$T/$1.out")" = "$3" ] ||
        { echo "--- stdout"; head -c 2000 "$T/$1.out"; echo "--- stderr"; tail -20 "$T/$1.err"; fail "$1: status $got, want $2 and \"$3\""; }
}

lang first examples/hello.go
want first 0 "hello, world"
grep -q 'no snapshot of go@.* yet: taking one' "$T/first.err" || fail "first run did not say it takes a snapshot: $(cat "$T/first.err")"
dir=$(ls -d "$RUNVM_SNAPSHOTS"/go@*-* 2>/dev/null | grep -v '\.tmp\.' | head -1)
[ -n "$dir" ] && [ -s "$dir/state" ] || fail "no snapshot in $RUNVM_SNAPSHOTS: $(ls -la "$RUNVM_SNAPSHOTS")"
echo "ok: first run took the snapshot ($(basename "$dir")) in $(cat "$T/first.secs") s"

lang second examples/hello.go
want second 0 "hello, world"
[ ! -s "$T/second.err" ] || fail "restored run said: $(cat "$T/second.err")"
lang stdin examples/stdin.go --stdin examples/stdin.txt
want stdin 0 10
lang cerr examples/compile_error.go
[ "$(cat "$T/cerr.rc")" = 126 ] || fail "compile error on a restored VM: $(cat "$T/cerr.rc")"
echo "ok: restored runs: hello in $(cat "$T/second.secs") s, stdin, compile error 126"

# runvm snapshot: --lang names the one there is; --verify checks it whole.
got=$(timeout 300 "$RUNVM" snapshot --lang go 2>"$T/snapcmd.err") || fail "snapshot --lang go: $(cat "$T/snapcmd.err")"
[ "$got" = "$dir" ] || fail "snapshot --lang go printed '$got', want $dir"
timeout 300 "$RUNVM" snapshot --verify "$dir" >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
grep -q ': ok: .* MiB of RAM, 1 vCPU, devices uart,i8042,boot-timer,agent' "$T/verify.out" || fail "verify said: $(cat "$T/verify.out")"
cp -a "$dir" "$T/damaged" && chmod u+w "$T/damaged/memory"
printf '\x5a' | dd of="$T/damaged/memory" bs=1 seek=$((1 << 20)) conv=notrunc status=none
rc=0; timeout 300 "$RUNVM" snapshot --verify "$T/damaged" >"$T/damaged.out" 2>&1 || rc=$?
[ $rc = 125 ] && grep -q 'digest does not match' "$T/damaged.out" || fail "damaged memory file: $rc $(cat "$T/damaged.out")"
echo "ok: snapshot --lang names it, --verify checks it ($(cat "$T/verify.out" | cut -c1-60)...) and finds a damaged memory file"

# A corrupt snapshot: said, taken again, the run goes on.
chmod u+w "$dir/state"
printf '\xff' | dd of="$dir/state" bs=1 seek=200 conv=notrunc status=none
lang corrupt examples/hello.go
want corrupt 0 "hello, world"
grep -q 'checksum mismatch.*taking it again' "$T/corrupt.err" || fail "corrupt snapshot: $(cat "$T/corrupt.err")"
lang after examples/hello.go
want after 0 "hello, world"
[ ! -s "$T/after.err" ] || fail "run after retaking: $(cat "$T/after.err")"
echo "ok: a corrupt snapshot is said, taken again, and the run goes on"

# A store that cannot be written: a warning and a cold boot.
RUNVM_SNAPSHOTS=/proc/no-such-dir lang ro examples/hello.go
want ro 0 "hello, world"
grep -q 'booting without one' "$T/ro.err" || fail "unwritable store: $(cat "$T/ro.err")"
echo "ok: an unwritable snapshot store warns and boots cold"

lang cold examples/hello.go --no-snapshot
want cold 0 "hello, world"
lang warm examples/hello.go
want warm 0 "hello, world"
c=$(cat "$T/cold.secs") w=$(cat "$T/warm.secs")
echo "FIGURE lang go hello one-shot restored vs cold (nested KVM): restored $w s, cold $c s, ratio $(echo "scale=3; $w / $c" | bc)"
