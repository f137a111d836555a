#!/usr/bin/env bash
# Two runvm serve daemons behind a real HAProxy (Debian's) on loopback,
# /status as its health check, as docs/deploy.md sets it up. Under load
# (Piston executes at concurrency 4) one daemon gets SIGTERM: it answers
# /status with 503 and new work with 503, finishes what it took and exits
# 0; HAProxy takes it out and sends the rest (and what it refused, retried)
# to the other. Every request the balancer accepted is answered right.
# test-timeout: 900
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
command -v haproxy >/dev/null || { echo "skip: no haproxy (make deps)"; exit 77; }
mkdir -p "$T/images"
agent_initrd "$T/images/sh@1.0.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh 1.0.0\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo sleep
printf 'LANG=sh\nVERSION=1.0\nDEFAULT=1.0\nSOURCE=main.sh\nRUN=sh main.sh\n' >"$T/images/sh@1.0.conf"
export RUNVM_IMAGES=$T/images RUNVM_KERNEL=$KERNEL RUNVM_SNAPSHOTS=$T/snapshots
export XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
base=$((20000 + $$ % 15000))
front=$base pa=$((base + 1)) pb=$((base + 2)) stats=$((base + 3))
pids=()
daemon() { # NAME PORT
    "$RUNVM" serve --api-sock "$T/$1.sock" --listen "127.0.0.1:$2" --langs sh \
        --max-vms 2 --queue 16 --warm 1 --mem 256 --timeout 20 --boot-timer \
        >"$T/$1.out" 2>"$T/$1.err" &
    pids+=($!)
}
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; pkill -9 -f -- "--api-fd 3" 2>/dev/null || true; [ -f "$T/haproxy.pid" ] && kill "$(cat "$T/haproxy.pid")" 2>/dev/null || true' EXIT
daemon a $pa
daemon b $pb
watch_runvm ${pids[0]} "$T/a.err"
cat >"$T/haproxy.cfg" <<EOF
global
    pidfile $T/haproxy.pid
    daemon
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1
frontend runvm
    bind 127.0.0.1:$front
    default_backend serve
backend serve
    balance leastconn
    option httpchk GET /status
    http-check expect status 200
    default-server check inter 300ms fall 1 rise 2
    server a 127.0.0.1:$pa
    server b 127.0.0.1:$pb
listen stats
    bind 127.0.0.1:$stats
    stats enable
    stats uri /
EOF
haproxy -c -f "$T/haproxy.cfg" >/dev/null || fail "haproxy config: $(haproxy -c -f "$T/haproxy.cfg" 2>&1)"
haproxy -f "$T/haproxy.cfg"
# Both daemons up and healthy, each with its snapshot taken.
for p in $pa $pb; do
    for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$p/status" && break; sleep 0.1; done
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 \
        -d '{"language":"sh","version":"*","files":[{"content":"echo warm"}]}' "http://127.0.0.1:$p/api/v2/execute")
    [ "$code" = 200 ] || fail "daemon on $p: $code"
done
up() { curl -s "http://127.0.0.1:$stats/;csv" | grep -Eq "^serve,$1,([^,]*,){15}UP,"; }
for _ in $(seq 100); do up a && up b && break; sleep 0.2; done
up a && up b || fail "haproxy: $(curl -s "http://127.0.0.1:$stats/;csv" | grep ^serve)"
echo "ok: two daemons behind haproxy, both UP"

# 48 Piston executes at concurrency 4 through the balancer; daemon a gets
# SIGTERM once a dozen are answered.
cat >"$T/load.py" <<'EOF'
import json, sys, time, urllib.request, concurrent.futures as cf
url, n = sys.argv[1], int(sys.argv[2])
def one(i):
    body = json.dumps({"language": "sh", "version": "*",
                       "files": [{"content": f"sleep 0.5; echo job{i}"}]}).encode()
    t0 = time.time()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=300) as r:
            out = json.load(r)["run"]["stdout"]
            return i, r.status, out, time.time() - t0
    except Exception as e:
        return i, getattr(e, "code", 0), repr(e).replace(" ", "_"), time.time() - t0
with cf.ThreadPoolExecutor(4) as ex:
    for i, st, out, dt in ex.map(one, range(n)):
        print(i, st, out.strip(), f"{dt:.2f}", flush=True)
EOF
python3 "$T/load.py" "http://127.0.0.1:$front/api/v2/execute" 48 >"$T/load.out" &
load=$!
for _ in $(seq 1200); do [ "$(wc -l <"$T/load.out")" -ge 12 ] && break; sleep 0.1; done
kill -TERM "${pids[0]}"
rc=0
wait "${pids[0]}" || rc=$?
unwatch_runvm
[ $rc = 0 ] || { tail "$T/a.err"; fail "daemon a exited $rc after SIGTERM, want 0"; }
echo "ok: daemon a drained under load and exited 0 after $(wc -l <"$T/load.out") answers"
wait $load
bad=$(awk '$2 != 200 || $3 != "job" $1' "$T/load.out")
# A VM that hung shows its KVM counters (--boot-timer) in its daemon's
# log: the most page faults KVM injected into any one of them, where
# run-inside finds the nested host's storm.
[ -z "$bad" ] || { grep -ho 'pf_guest [0-9]*' "$T/a.err" "$T/b.err" | sort -k2 -n | tail -n 1
    fail "requests lost or wrong: $bad"; }
[ "$(wc -l <"$T/load.out")" = 48 ] || fail "$(wc -l <"$T/load.out") of 48 answered"
curl -s "http://127.0.0.1:$stats/;csv" | grep -Eq '^serve,a,.*,DOWN' || fail "haproxy did not take daemon a out"
echo "ok: 48 of 48 answered right through haproxy, daemon a out of rotation"
sort -n -k4 "$T/load.out" | awk '{a[NR]=$4} END {printf "FIGURE haproxy 48 requests at concurrency 4, one daemon drained: p50 %s s, max %s s\n", a[int(NR/2)+1], a[NR]}'
kill -TERM "${pids[1]}"
rc=0
wait "${pids[1]}" || rc=$?
[ $rc = 0 ] || fail "daemon b exited $rc after SIGTERM"
kill "$(cat "$T/haproxy.pid")"
