#!/usr/bin/env bash
# API mode: a submission is one fresh VM. With a snapshot store, the first
# boot takes the image's snapshot; each POST /start without reuse after a
# run gets a VM restored from it, so a submission cannot see what the one
# before it wrote (in /tmp or its directory),
# two fresh VMs read different random bytes and the host's time, and
# reuse: true stays in the current one. A second runvm restores from the
# start. --no-snapshot keeps one VM for every submission.
# test-timeout: 600
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
agent_initrd "$T/sh.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat head od tr date sleep ls pwd
export RUNVM_SNAPSHOTS=$T/snapshots XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
S=$T/api.sock

serve() { # EXTRA-ARGS...: starts API mode, waits for ready
    rm -f "$S"
    "$RUNVM" --lang sh --kernel "$KERNEL" --initrd "$T/sh.cpio.gz" --mem 256 \
        --api-sock "$S" --boot-timer "$@" >"$T/runvm.out" 2>"$T/runvm.err" &
    pid=$!
    watch_runvm $pid "$T/runvm.err"
    for _ in $(seq 600); do [ -S "$S" ] && break; sleep 0.1; done
    [ -S "$S" ] || { cat "$T/runvm.err"; fail "no API socket"; }
}
c() { curl -s --max-time 300 --unix-socket "$S" -o "$T/body" -w '%{http_code}' "$@"; }
run() { # NAME CODE [REUSE]: the run's stdout in $T/NAME.out, status in .status
    local code
    code=$(c -H 'Content-Type: application/json' --data-binary \
        "$(jq -n --arg code "$2" --argjson reuse "${3:-false}" '{code: $code, reuse: $reuse}')" http://runvm/start)
    [ "$code" = 200 ] || { cat "$T/runvm.err"; fail "$1: POST /start $code $(cat "$T/body")"; }
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while (b := s.recv(65536)): sys.stdout.buffer.write(b)' "$(jq -r .output_socket "$T/body")" >"$T/$1.ndjson"
    tail -n1 "$T/$1.ndjson" | jq -r .status >"$T/$1.status"
    jq -j 'select(.type=="output" and .stream=="stdout") | .data' "$T/$1.ndjson" >"$T/$1.out"
}
shutdown() {
    [ "$(c -X PUT http://runvm/shutdown)" = 200 ] || fail "shutdown"
    local rc=0; wait $pid || rc=$?
    unwatch_runvm
    [ $rc = 0 ] || { cat "$T/runvm.err"; fail "runvm exited $rc"; }
}
trap 'kill $pid 2>/dev/null || true' EXIT
WRITE='echo secret >/tmp/left; echo here >left; (sleep 1000 &) ; echo wrote'
LOOK='ls /tmp/left left 2>&1; pwd; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; date +%s'

serve
run first "$WRITE"
[ "$(cat "$T/first.out")" = wrote ] || fail "first: $(cat "$T/first.ndjson")"
grep -q 'no snapshot of sh-.* yet: taking one' "$T/runvm.err" || fail "first boot did not take a snapshot: $(cat "$T/runvm.err")"
run again "cat /tmp/left left" true
[ "$(cat "$T/again.out")" = "$(printf 'secret\nhere\n')" ] || fail "reuse: $(cat "$T/again.out")"
echo "ok: reuse runs in the same VM and directory"
run fresh1 "$LOOK"
grep -q 'No such file' "$T/fresh1.out" || fail "a fresh submission sees the last one's files: $(cat "$T/fresh1.out")"
run fresh2 "$LOOK"
c http://runvm/status >/dev/null
jq -e '.fresh_vms == true and .vms == 3' "$T/body" >/dev/null || fail "status: $(cat "$T/body")"
r1=$(sed -n 4p "$T/fresh1.out") r2=$(sed -n 4p "$T/fresh2.out")
[ ${#r1} = 32 ] && [ "$r1" != "$r2" ] || fail "random bytes of two fresh VMs: '$r1' '$r2'"
now=$(date +%s) t=$(sed -n 5p "$T/fresh2.out")
d=$((now - t)); d=${d#-}
[ $d -le 30 ] || fail "fresh VM clock $t, host $now"
# Twenty more submissions, each a fresh VM: runvm's descriptors, threads
# and memory do not grow with the VMs it has made and thrown away.
snap() { echo "$(ls /proc/$pid/fd | wc -l) $(awk '/^Threads:/ {print $2}' /proc/$pid/status) $(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)"; }
run warm "echo warm"
before=$(snap)
s0=$(date +%s.%N)
for i in $(seq 20); do
    run "many$i" "echo $i"
    [ "$(cat "$T/many$i.out")" = "$i" ] || fail "submission $i: $(cat "$T/many$i.ndjson")"
done
secs=$(echo "$(date +%s.%N) - $s0" | bc)
after=$(snap)
set -- $before; fb=$1 tb=$2 rb=$3
set -- $after; fa=$1 ta=$2 ra=$3
[ "$fa" -le "$fb" ] && [ "$ta" -le "$tb" ] && [ $((ra - rb)) -lt 4096 ] ||
    fail "20 fresh VMs: fds $fb -> $fa, threads $tb -> $ta, RSS $rb -> $ra KiB"
echo "FIGURE api 20 submissions, each a fresh restored VM (nested KVM): $secs s; fds $fb -> $fa, threads $tb -> $ta, RSS $rb -> $ra KiB"
shutdown
echo "ok: each submission a fresh VM: no files left by the last, own random bytes, host's time; 20 more without growth"

serve
grep -q 'taking one' "$T/runvm.err" && fail "second runvm took the snapshot again"
run second "$LOOK"
[ "$(cat "$T/second.status")" = 0 ] || fail "second runvm's first run: $(cat "$T/second.ndjson")"
shutdown
echo "ok: a second runvm restores from the snapshot there is"

serve --no-snapshot
run one "$WRITE"
run two "cat /tmp/left 2>&1; echo done"
c http://runvm/status >/dev/null
jq -e '.fresh_vms == false and .vms == 1' "$T/body" >/dev/null || fail "--no-snapshot status: $(cat "$T/body")"
shutdown
echo "ok: --no-snapshot serves every submission in one VM"
