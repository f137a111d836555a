#!/usr/bin/env bash
# API mode through real clients: runvm --lang go --api-sock PATH, driven
# with curl --unix-socket. A malformed request, an oversized body and an
# unknown path get their 4xx with a JSON error while the VM stays usable;
# POST /start streams NDJSON events from the output socket (a second one
# meanwhile gets 409); several runs
# follow on one VM (examples/client.py: build once, three stdin cases);
# PUT /shutdown ends runvm with 0 and leaves no socket file behind.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
image_require go
S=$T/api.sock
export XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
"$RUNVM" --lang go --api-sock "$S" --timeout 20 --boot-timer >"$T/runvm.out" 2>"$T/runvm.err" &
pid=$!
watch_runvm $pid "$T/runvm.err"
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -S "$S" ] && break; sleep 0.1; done
[ -S "$S" ] || { cat "$T/runvm.err"; fail "no API socket"; }
[ "$(stat -c %a "$S")" = 600 ] || fail "socket mode $(stat -c %a "$S"), want 600"
echo "ok: API socket up"
# MAX=S caps a request: the error replies come at once, a run may take long.
c() { curl -s --max-time "${MAX:-300}" --unix-socket "$S" -o "$T/body" -w '%{http_code}' "$@"; }

code=$(MAX=60 c http://runvm/nope); [ "$code" = 404 ] || fail "unknown path: $code"
jq -e .error "$T/body" >/dev/null || fail "404 body not JSON: $(cat "$T/body")"
code=$(MAX=60 c -X DELETE http://runvm/start); [ "$code" = 405 ] || fail "DELETE /start: $code"
head -c $((5 << 20)) /dev/zero | tr '\0' x >"$T/big"
code=$(MAX=60 c -H 'Content-Type: text/plain' --data-binary @"$T/big" http://runvm/start)
[ "$code" = 413 ] || fail "oversized body: $code"
code=$(printf 'GARBAGE\r\n\r\n' | python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.recv(4096).split(b" ")[1].decode())' "$S")
[ "$code" = 400 ] || fail "malformed request: $code"
code=$(MAX=60 c -H 'Content-Type: application/json' --data-binary '{"code": 5}' http://runvm/start)
[ "$code" = 400 ] || fail "bad JSON field: $code"
echo "ok: 404, 405, 413, 400, 400 with JSON errors"

read_events() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while (b := s.recv(65536)): sys.stdout.buffer.write(b)' "$1"
}
start=$(date +%s.%N)
code=$(c -H 'Content-Type: text/plain' --data-binary @examples/hello.go http://runvm/start)
[ "$code" = 200 ] || fail "POST /start: $code $(cat "$T/body")"
sock=$(jq -r .output_socket "$T/body")
case $sock in "$XDG_RUNTIME_DIR"/runvm.*/*.sock) ;; *) fail "output socket $sock not in runvm's runtime dir" ;; esac
# One run at a time: a second /start while this one waits is refused.
code=$(c -H 'Content-Type: text/plain' --data-binary @examples/hello.go http://runvm/start)
[ "$code" = 409 ] || fail "second /start during a run: $code, want 409"
jq -e .error "$T/body" >/dev/null || fail "409 body not JSON: $(cat "$T/body")"
read_events "$sock" >"$T/hello.ndjson"
echo "FIGURE api go hello request to exit event on a booted VM (nested KVM, boot overlapped if first): $(echo "$(date +%s.%N) - $start" | bc) s"
jq -s -e '(map(select(.type=="output" and .stream=="stdout") | .data) | join("")) == "hello, world\n"
          and (last | .type == "exit" and .status == 0)' "$T/hello.ndjson" >/dev/null ||
    { cat "$T/hello.ndjson"; fail "hello events"; }
[ ! -e "$sock" ] || fail "output socket left after the run"
echo "ok: hello over the API"
# runvm confined itself before the guest ran (vmm/sandbox.c, seccomp.c):
# every thread, the vCPUs started after it included, has no_new_privs and
# a seccomp filter; no core dumps.
tasks=0
for st in /proc/$pid/task/*/status; do
    grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" || fail "thread $st: $(grep NoNewPrivs "$st")"
    grep -q '^Seccomp:[[:space:]]*2$' "$st" || fail "thread $st: $(grep Seccomp: "$st"), want a filter (2)"
    tasks=$((tasks + 1))
done
[ "$tasks" -ge 2 ] || fail "runvm has $tasks threads, want the loop and a vCPU"
grep -Eq '^Max core file size +0 +0 ' /proc/$pid/limits || fail "core dumps not off: $(grep core /proc/$pid/limits)"
echo "ok: runvm's $tasks threads have no_new_privs and a seccomp filter, no core dumps"

python3 examples/client.py "$S" examples/stdin.go "1 2 3" 6 "40 2" 42 "7" 7 | tee "$T/client.out"
[ "$(grep -c PASS "$T/client.out")" = 3 ] || fail "client: not 3 PASS"
# Request to exit event on a booted VM, run step only (the build is reused).
for i in 1 2 3 4 5; do
    s0=$(date +%s.%N)
    python3 examples/client.py "$S" examples/stdin.go "$i" "$i" >/dev/null 2>&1 || true
    echo "$(date +%s.%N) - $s0" | bc
done >"$T/times"
echo "FIGURE api go stdin.go build+run request to exit, booted VM (nested KVM), median of 5: $(sort -n "$T/times" | sed -n 3p) s"

code=$(c -X PUT http://runvm/shutdown); [ "$code" = 200 ] || fail "shutdown: $code"
rc=0; wait $pid || rc=$?
unwatch_runvm
trap - EXIT
[ "$rc" = 0 ] || { tail "$T/runvm.err"; fail "runvm exited $rc after PUT /shutdown"; }
[ ! -e "$S" ] || fail "API socket left behind"
[ -z "$(ls -A "$XDG_RUNTIME_DIR")" ] || fail "left in the runtime dir: $(ls -A "$XDG_RUNTIME_DIR")"
echo "ok: shutdown, exit 0, no socket files left"
