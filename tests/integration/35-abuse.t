#!/usr/bin/env bash
# A hostile snippet in API mode, runvm running as nobody (--user; docs/cli.md,
# issue #17): a fork bomb, a
# memory hog, endless output to a reader that stalls, a program that
# ignores SIGTERM, a FIFO left where the next request's file goes, and a
# full /tmp are each stopped with their status while the VM goes on
# serving; then 1000 runs in a row in one API session leave runvm's
# descriptors, threads and memory where they were.
# test-timeout: 900
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
# An sh "language": the agent, busybox and a lang.conf.
agent_initrd "$T/sh.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat head tr dd sleep yes rm mkfifo ls wc seq

# runvm gives up root for nobody once /dev/kvm and its files are open
# (--user): its sockets live in a directory nobody owns.
chmod 711 "$T"
mkdir -p "$T/run/xdg" && chown -R nobody: "$T/run"
S=$T/run/api.sock
export XDG_RUNTIME_DIR=$T/run/xdg
"$RUNVM" --lang sh --kernel "$KERNEL" --initrd "$T/sh.cpio.gz" --mem 256 --cpus 2 \
    --api-sock "$S" --user nobody --boot-timer >"$T/runvm.out" 2>"$T/runvm.err" &
pid=$!
watch_runvm $pid "$T/runvm.err"
trap 'kill $pid 2>/dev/null || true' EXIT
c() { curl -s --max-time 300 --unix-socket "$S" -o "$T/body" -w '%{http_code}' "$@"; }
for _ in $(seq 600); do [ -S "$S" ] && break; sleep 0.1; done
for _ in $(seq 600); do
    c http://runvm/status >/dev/null && [ "$(jq -r .state "$T/body")" = ready ] && break
    sleep 0.5
done
[ "$(jq -r .state "$T/body")" = ready ] || { cat "$T/runvm.err"; fail "VM not ready"; }
grep -Eq "^Uid:\s+65534\s+65534\s+65534\s+65534" /proc/$pid/status &&
    grep -Eq '^Groups:\s*$' /proc/$pid/status || fail "--user nobody: $(grep -E '^(Uid|Groups)' /proc/$pid/status)"
echo "ok: runvm serves as nobody (--user), no groups"

# run NAME JSON: POST /start, read the events into $T/NAME.ndjson; the exit
# event's status in $T/NAME.status.
run() {
    local code
    code=$(c -H 'Content-Type: application/json' --data-binary "$2" http://runvm/start)
    [ "$code" = 200 ] || fail "$1: POST /start $code $(cat "$T/body")"
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while (b := s.recv(65536)): sys.stdout.buffer.write(b)' "$(jq -r .output_socket "$T/body")" >"$T/$1.ndjson" ||
        fail "$1: its events (the answer: $(cat "$T/body"))"
    tail -n1 "$T/$1.ndjson" | jq -r .status >"$T/$1.status"
}
status() { cat "$T/$1.status"; }
stdout() { jq -j 'select(.type=="output" and .stream=="stdout") | .data' "$T/$1.ndjson"; }
sh_json() { # CODE [LIMITS-JSON [REUSE]]
    local limits=${2:-} reuse=${3:-false}
    [ -n "$limits" ] || limits='{}'
    jq -n --arg code "$1" --argjson limits "$limits" --argjson reuse "$reuse" \
        '{code: $code, limits: $limits, reuse: $reuse}'
}
alive() {
    run "alive-$1" "$(sh_json 'echo alive')"
    [ "$(stdout "alive-$1")" = alive ] || fail "after $1: the VM does not run a snippet"
}

run forkbomb "$(sh_json 'f() { f | f & }; f; sleep 5' '{"timeout_ms": 4000, "max_procs": 64}')"
[ -n "$(status forkbomb)" ] || fail "fork bomb: no exit event"
alive forkbomb
echo "ok: fork bomb contained (status $(status forkbomb)), the VM goes on"

run hog "$(sh_json 'x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo survived' '{"timeout_ms": 20000, "memory_bytes": 67108864}')"
[ "$(stdout hog)" != survived ] && [ "$(status hog)" != 0 ] || fail "memory hog: status $(status hog), $(stdout hog)"
alive hog
echo "ok: memory hog stopped (status $(status hog))"

run term "$(sh_json "trap '' TERM; echo ready; sleep 100" '{"timeout_ms": 1500}')"
[ "$(status term)" = 124 ] || fail "SIGTERM ignored: status $(status term), want 124"
alive term
echo "ok: a program that ignores SIGTERM is stopped at its limit (124)"

# Endless output, its reader connected but not reading.
code=$(c -H 'Content-Type: application/json' --data-binary "$(sh_json 'yes' '{"timeout_ms": 3000}')" http://runvm/start)
[ "$code" = 200 ] || fail "flood: POST /start $code"
python3 -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1]); time.sleep(8)' "$(jq -r .output_socket "$T/body")"
alive flood
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
[ "$rss" -lt 262144 ] || fail "flood: runvm holds $rss KiB"
echo "ok: endless output to a stalled reader: runvm at $rss KiB, the VM goes on"

# A FIFO where the next request's file goes must not wedge the agent.
run fifo1 "$(sh_json 'rm -f main.sh; mkfifo main.sh; echo made')"
run fifo2 "$(sh_json 'echo not blocked' '{"timeout_ms": 5000}' true)"
[ "$(stdout fifo2)" = "not blocked" ] || fail "FIFO trick: $(status fifo2) '$(stdout fifo2)'"
echo "ok: a FIFO named like the next file does not block the agent"

# /tmp filled: the writer stops at the mount's size, the next run gets a
# fresh /tmp.
run fill "$(sh_json 'dd if=/dev/zero of=/tmp/big bs=1M 2>&1 | tail -n 1; ls -l /tmp/big | wc -l' '{"timeout_ms": 20000}')"
alive fill
run fresh "$(sh_json 'ls /tmp | wc -l')"
[ "$(stdout fresh | tr -d ' \n')" = 0 ] || fail "/tmp not fresh for the next run: $(stdout fresh)"
echo "ok: a full /tmp stops its writer; the next run's /tmp is empty"

# 1000 runs in a row: no growth in descriptors, threads or memory. One
# client process for them all, so the runs are what is timed.
python3 - "$S" "$pid" >"$T/many.out" <<'PY' || { tail -5 "$T/many.out"; fail "1000 runs"; }
import json, os, socket, sys, time
api, pid = sys.argv[1], sys.argv[2]
# A run that takes two minutes is stuck: say where, with the server's
# state, rather than wait for the test's own limit.
def connect(path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(120); s.connect(path)
    return s
def status():
    try:
        s = connect(api); s.sendall(b"GET /status HTTP/1.1\r\n\r\n")
        data = b""
        while (d := s.recv(65536)): data += d
        return data.split(b"\r\n\r\n", 1)[-1].decode()
    except Exception as e:
        return f"none ({e!r})"
def request(body):
    s = connect(api)
    s.sendall(b"POST /start HTTP/1.1\r\nContent-Type: text/plain\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    data = b""
    while (d := s.recv(65536)): data += d
    s.close()
    status = int(data.split(b" ")[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])
def events(path):
    s = connect(path)
    data = b""
    while (d := s.recv(65536)): data += d
    s.close()
    return [json.loads(l) for l in data.splitlines()]
def snap():
    st = open(f"/proc/{pid}/status").read().split("\n")
    get = lambda k: int(next(l for l in st if l.startswith(k)).split()[1])
    return len(os.listdir(f"/proc/{pid}/fd")), get("Threads:"), get("VmRSS:")
def run(i):
    try:
        code, body = request(b"echo %d" % i)
        assert code == 200, (code, body)
        ev = events(body["output_socket"])
        out = "".join(e["data"] for e in ev if e["type"] == "output" and e["stream"] == "stdout")
        assert out == f"{i}\n" and ev[-1]["status"] == 0, ev
    except Exception as e:
        sys.exit(f"run {i}: {e!r}; GET /status: {status()}")
for i in range(10):
    run(i)
before = snap()
start = time.time()
for i in range(1000):
    run(i)
secs = time.time() - start
after = snap()
print(f"FIGURE api 1000 runs in one session (nested KVM): {secs:.1f} s; "
      f"fds {before[0]} -> {after[0]}, threads {before[1]} -> {after[1]}, "
      f"RSS {before[2]} -> {after[2]} KiB")
assert after[0] <= before[0] and after[1] <= before[1], (before, after)
assert after[2] - before[2] < 2048, (before, after)
PY
cat "$T/many.out"
echo "ok: 1000 runs in one session, no growth"

c -X PUT http://runvm/shutdown >/dev/null
rc=0; wait $pid || rc=$?
unwatch_runvm
trap - EXIT
[ "$rc" = 0 ] || { tail "$T/runvm.err"; fail "runvm exited $rc"; }
echo "ok: shutdown"
