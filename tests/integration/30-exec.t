#!/usr/bin/env bash
# runvm --exec: an initramfs holding only runvm-agent (/init) and busybox
# boots; ARGV's stdout and stderr come back apart and byte-exact, and its
# exit status, a signal (128+N) and a time limit (124) become runvm's.
# Figures: empty RUN round trip (median of 100 in one booted VM) and the
# channel throughput of bulk output written to stdout by the guest program.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
agent_initrd "$T/agent.cpio.gz" "" sh echo cat head true sleep kill wc
exec_vm() { # NAME ARGV... : stdout in $T/NAME.out, stderr in .err, rc in .rc
    local name=$1 rc=0; shift
    timeout 300 "$RUNVM" --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" \
        --mem 256 --exec -- "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$rc" >"$T/$name.rc"
}
show() { echo "--- stdout"; head -c 2000 "$T/$1.out"; echo "--- stderr"; tail -20 "$T/$1.err"; }

exec_vm hello sh -c 'echo hello from the guest; echo to stderr >&2; exit 3'
[ "$(cat "$T/hello.rc")" = 3 ] || { show hello; fail "hello: status $(cat "$T/hello.rc"), want 3"; }
[ "$(cat "$T/hello.out")" = "hello from the guest" ] || { show hello; fail "hello: stdout"; }
grep -qx 'to stderr' "$T/hello.err" || { show hello; fail "hello: stderr"; }
grep -q 'hello from' "$T/hello.err" && fail "hello: stdout leaked into stderr"
echo "ok: output and status 3"

exec_vm sig sh -c 'kill -TERM $$'
[ "$(cat "$T/sig.rc")" = 143 ] || { show sig; fail "signal: status $(cat "$T/sig.rc"), want 143"; }
echo "ok: SIGTERM gives 143"

rc=0
timeout 300 "$RUNVM" --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 \
    --timeout 20 --exec -- sleep 1000 >"$T/to.out" 2>&1 </dev/null || rc=$?
[ "$rc" = 124 ] || { cat "$T/to.out"; fail "timeout: status $rc, want 124"; }
# 124 is also what the safety timeout(1) above gives: runvm must say it
# stopped the guest (--exec: the VM's limit and the step's are one).
grep -Eq 'step stopped at its time limit|after --timeout 20 s; stopped it' "$T/to.out" ||
    { cat "$T/to.out"; fail "timeout: the 124 did not come from runvm's own limit"; }
echo "ok: --timeout gives 124"

# Round trip of an empty RUN, 100 times in one booted VM.
RUNVM_EXEC_REPEAT=100 exec_vm rtt true
[ "$(cat "$T/rtt.rc")" = 0 ] || { show rtt; fail "rtt: status $(cat "$T/rtt.rc")"; }
line=$(grep 'exec-bench' "$T/rtt.err") || { show rtt; fail "rtt: no bench line"; }
echo "FIGURE exec empty RUN round trip (nested KVM): ${line#runvm: exec-bench: }"

# Bulk output through the channel to runvm's stdout (EXEC_BYTES, default
# 8 MiB: under nested TCG the channel moves well under 1 MB/s).
N=${EXEC_BYTES:-8388608}
start=$(date +%s.%N)
rc=0
timeout 600 "$RUNVM" --kernel "$KERNEL" --initrd "$T/agent.cpio.gz" --mem 256 \
    --timeout 500 --exec -- sh -c "head -c $N /dev/zero" 2>"$T/big.err" </dev/null | wc -c >"$T/big.count" || rc=$?
secs=$(echo "$(date +%s.%N) - $start" | bc)
[ "$(cat "$T/big.count")" = "$N" ] || { tail "$T/big.err"; fail "bulk: got $(cat "$T/big.count") bytes"; }
echo "FIGURE exec $((N >> 20)) MiB to stdout (nested KVM, boot included): $secs s = $(echo "scale=1; $N / $secs / 1000000" | bc) MB/s"
echo "ok: $N bytes arrived"
