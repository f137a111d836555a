#!/usr/bin/env bash
# runvm serve with real VMs: two languages (busybox sh images, "sh" and
# "bb"), every submission in a VM of its own restored from its language's
# snapshot (taken by the first child that boots it). A submission does not
# see the last one's files, unless it is one of several runs ("keep",
# "submission", "reuse"); two run at once; a burst past --max-vms and
# --queue gets 429 with Retry-After and every accepted one its right
# output; a reader that hangs up cancels its run and its VM; each VM is a
# sandboxed runvm of its own; SIGTERM under load answers 503, finishes the
# run it took, exits 0 and leaves no process or socket behind.
# test-timeout: 900
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
mkdir -p "$T/images"
agent_initrd "$T/images/sh.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat ls sleep
agent_initrd "$T/images/bb.cpio.gz" $'LANG=bb\nTOOLCHAIN=busybox sh\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat ls sleep
export RUNVM_IMAGES=$T/images RUNVM_KERNEL=$KERNEL RUNVM_SNAPSHOTS=$T/snapshots
export XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
S=$T/serve.sock
"$RUNVM" serve --api-sock "$S" --langs sh,bb --max-vms 2 --queue 2 --warm 1 \
    --mem 256 --timeout 30 --boot-timer >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
watch_runvm $pid "$T/serve.err"
trap 'kill -9 $pid 2>/dev/null || true; pkill -9 -P $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -S "$S" ] && break; sleep 0.1; done
[ -S "$S" ] || fail "no API socket"
c() { curl -s --max-time 300 --unix-socket "$S" -o "$T/body" -w '%{http_code}' "$@"; }

# client.py LANG CODE [--hangup]: POST /start, then the run's events;
# prints the HTTP status, then stdout; exits 0.
cat >"$T/client.py" <<'EOF'
import json, socket, sys
def http(path, method, body):
    s = socket.socket(socket.AF_UNIX); s.settimeout(600); s.connect(sys.argv[1])
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while (b := s.recv(65536)): data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), rest
lang, code = sys.argv[2], sys.argv[3]
st, head, body = http("/start", "POST", json.dumps({"lang": lang, "code": code}).encode())
if st != 200:
    print(st, "retry-after" if "Retry-After: 1" in head else "", body.decode().strip()); sys.exit(0)
o = socket.socket(socket.AF_UNIX); o.settimeout(600); o.connect(json.loads(body)["output_socket"])
if len(sys.argv) > 4:  # --hangup: the first event, then away
    o.recv(1); o.close(); print(200, "hung up"); sys.exit(0)
ev = b""
while (b := o.recv(65536)): ev += b
evs = [json.loads(l) for l in ev.decode().splitlines()]
out = "".join(e.get("data", "") for e in evs if e["type"] == "output" and e["stream"] == "stdout")
print(200, evs[-1]["type"], evs[-1].get("status"), out.strip().replace("\n", "|"))
EOF
client() { python3 "$T/client.py" "$S" "$@"; }

s0=$(date +%s.%N)
r=$(client sh 'echo secret >/tmp/left; echo first')
[ "$r" = "200 exit 0 first" ] || fail "first: $r"
echo "FIGURE serve first submission from a cold daemon (snapshot taken): $(echo "$(date +%s.%N) - $s0" | bc) s"
ls "$T/snapshots" | grep -q . || fail "no snapshot was taken"
r=$(client sh 'ls /tmp/left 2>&1 | grep -c "No such"; echo second')
[ "$r" = "200 exit 0 1|second" ] || fail "a submission sees the last one's files: $r"
r=$(client bb 'echo from bb')
[ "$r" = "200 exit 0 from bb" ] || fail "bb: $r"
echo "ok: submissions in fresh VMs, two languages"

# A submission of several runs: "keep" keeps its VM, the next run names it
# and, with "reuse", runs in the same directory; a run without "keep" ends
# it.
python3 - "$S" <<'EOF' || fail "a kept submission"
import json, socket, sys
def http(body):
    s = socket.socket(socket.AF_UNIX); s.settimeout(600); s.connect(sys.argv[1])
    b = json.dumps(body).encode()
    s.sendall(b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(b) + b)
    data = b""
    while (c := s.recv(65536)): data += c
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest)
def run(body):
    st, a = http(body)
    assert st == 200, (st, a)
    o = socket.socket(socket.AF_UNIX); o.settimeout(600); o.connect(a["output_socket"])
    ev = b""
    while (c := o.recv(65536)): ev += c
    evs = [json.loads(l) for l in ev.decode().splitlines()]
    out = "".join(e.get("data", "") for e in evs if e["type"] == "output")
    assert evs[-1]["type"] == "exit" and evs[-1]["status"] == 0, evs[-1]
    return a, out.strip()
code = "if [ -f note ]; then cat note; else cat >note; echo wrote; fi"
a, out = run({"lang": "sh", "code": code, "stdin": "kept", "keep": True})
assert out == "wrote" and len(a.get("submission", "")) == 32, (a, out)
b, out = run({"submission": a["submission"], "reuse": True, "keep": True})
assert out == "kept" and b["id"] == a["id"], (b, out)
c, out = run({"submission": a["submission"], "reuse": True})
assert out == "kept" and "submission" not in c, (c, out)
st, d = http({"submission": a["submission"], "reuse": True})
assert st == 404, (st, d)
print("ok: a kept submission ran three times in one VM and directory, then ended")
EOF
for i in 1 2 3; do
    s0=$(date +%s.%N)
    r=$(client sh "echo warm$i")
    [ "$r" = "200 exit 0 warm$i" ] || fail "warm $i: $r"
    echo "FIGURE serve sh submission, request to exit event, warm pool: $(echo "$(date +%s.%N) - $s0" | bc) s"
done

# Each VM is a runvm of its own, confined before its guest runs.
c http://runvm/status >/dev/null
jq -e '.vms.max == 2 and .queue.max == 2 and (.langs | length) == 2' "$T/body" >/dev/null ||
    fail "status: $(cat "$T/body")"
# (A child still restoring its VM has not confined itself yet: wait.)
for _ in $(seq 300); do
    kids=$(pgrep -P $pid || true) unconfined=
    for k in $kids; do
        grep -q '^Seccomp:[[:space:]]*2$' /proc/$k/status 2>/dev/null || unconfined="$unconfined $k"
    done
    [ -n "$kids" ] && [ -z "$unconfined" ] && break
    sleep 0.1
done
[ -n "$kids" ] || fail "no VM processes"
[ -z "$unconfined" ] || fail "VM processes without a seccomp filter:$unconfined"
for k in $kids; do
    tr '\0' ' ' </proc/$k/cmdline | grep -q -- '--api-fd 3' || fail "VM process $k: $(tr '\0' ' ' </proc/$k/cmdline)"
done
echo "ok: $(echo $kids | wc -w) VM processes, each with a seccomp filter"

# A burst: 2 VMs and a queue of 2 take 3 or 4 of 8; the rest are told to retry.
burst=()
for i in $(seq 8); do client sh "sleep 4; echo burst$i" >"$T/burst$i" & burst+=($!); done
wait "${burst[@]}"
ok=0 busy=0
for i in $(seq 8); do
    r=$(cat "$T/burst$i")
    case $r in
    "200 exit 0 burst$i") ok=$((ok + 1)) ;;
    "429 retry-after"*) busy=$((busy + 1)) ;;
    *) fail "burst $i: $r" ;;
    esac
done
# (3 when the idle bb VM had to stop first to make room for sh.)
[ $ok -ge 3 ] && [ $((ok + busy)) = 8 ] && [ $busy -ge 1 ] || fail "burst: $ok ran, $busy refused"
echo "ok: burst of 8: $ok ran with the right output, $busy got 429 with Retry-After"

# A reader that hangs up cancels its run and stops its VM.
r=$(client sh 'echo start; sleep 300' --hangup)
[ "$r" = "200 hung up" ] || fail "hangup: $r"
for _ in $(seq 300); do
    c http://runvm/status >/dev/null
    jq -e '.cancelled == 1 and .vms.busy == 0' "$T/body" >/dev/null && break
    sleep 0.2
done
jq -e '.cancelled == 1 and .vms.busy == 0' "$T/body" >/dev/null || fail "cancel: $(cat "$T/body")"
echo "ok: a reader that hangs up cancels the run"

# SIGTERM under load: the run taken finishes, new work is refused.
client sh 'sleep 5; echo drained' >"$T/drain" &
cpid=$!
for _ in $(seq 300); do
    c http://runvm/status >/dev/null
    jq -e '.vms.busy == 1' "$T/body" >/dev/null && break
    sleep 0.1
done
kill -TERM $pid
sleep 0.5
[ "$(c http://runvm/status)" = 503 ] || fail "status while draining: $(cat "$T/body")"
jq -e '.draining == true' "$T/body" >/dev/null || fail "draining: $(cat "$T/body")"
[ "$(c -H 'Content-Type: application/json' --data-binary '{"lang":"sh","code":"echo late"}' http://runvm/start)" = 503 ] ||
    fail "a start while draining: $(cat "$T/body")"
wait $cpid
[ "$(cat "$T/drain")" = "200 exit 0 drained" ] || fail "the run taken before SIGTERM: $(cat "$T/drain")"
rc=0
wait $pid || rc=$?
unwatch_runvm
[ $rc = 0 ] || { tail -20 "$T/serve.err"; fail "serve exited $rc after draining, want 0"; }
[ ! -e "$S" ] || fail "socket left behind"
[ -z "$(ls -A "$XDG_RUNTIME_DIR")" ] || fail "left in the runtime dir: $(ls -A "$XDG_RUNTIME_DIR")"
pgrep -f -- "--api-fd 3" >/dev/null && fail "VM processes left: $(pgrep -af -- '--api-fd 3')"
echo "ok: SIGTERM drains under load and exits 0, nothing left"
