#!/usr/bin/env bash
# runvm serve through real clients, real VMs: the npm piston-client (its
# defaults: no Content-Type, args 1 2 3, the version it picks from
# /api/v2/runtimes) over TCP; POST /start over TCP with curl (the answer is
# the event stream); POST /judge with a batch holding an accepted case, a
# wrong answer, a crash and a time limit, and a program whose build fails.
# The language is a busybox sh image with a version and a config beside
# it (sh@1.0), as `make images` installs them.
# test-timeout: 600
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
client=$B/clients/node_modules/piston-client
[ -d "$client" ] || { echo "skip: no $client (make clients)"; exit 77; }
mkdir -p "$T/images"
agent_initrd "$T/images/sh@1.0.cpio.gz" $'LANG=sh\nTOOLCHAIN=busybox sh 1.0.0\nSOURCE=main.sh\nRUN=sh main.sh\nENV=PATH=/bin\n' sh echo cat sleep kill read
printf 'LANG=sh\nVERSION=1.0\nDEFAULT=1.0\nALIASES=bash-ish\nSOURCE=main.sh\nRUN=sh main.sh\n' >"$T/images/sh@1.0.conf"
export RUNVM_IMAGES=$T/images RUNVM_KERNEL=$KERNEL RUNVM_SNAPSHOTS=$T/snapshots
export XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
S=$T/serve.sock
port=$((20000 + $$ % 20000))
"$RUNVM" serve --api-sock "$S" --listen "127.0.0.1:$port" --langs sh --max-vms 2 \
    --warm 1 --mem 256 --timeout 20 --boot-timer >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
watch_runvm $pid "$T/serve.err"
trap 'kill -9 $pid 2>/dev/null || true; pkill -9 -P $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/status" && break; sleep 0.1; done
U="http://127.0.0.1:$port"

# The npm piston-client, as a platform backend calls it.
cat >"$T/piston.mjs" <<'EOF'
import piston from "piston-client";
const client = piston({ server: process.argv[2] });
const rt = await client.runtimes();
const sh = rt.find(r => r.language === "sh");
if (!sh || sh.version !== "1.0" || !sh.aliases.includes("bash-ish"))
  throw new Error("runtimes: " + JSON.stringify(rt));
const r = await client.execute("sh", 'echo "args: $@"; read x; echo "stdin: $x"; echo oops >&2; exit 3',
                               { stdin: "hello\n" });
console.log(JSON.stringify(r));
EOF
cp "$T/piston.mjs" "$B/clients/piston-test.mjs"
node "$B/clients/piston-test.mjs" "$U" >"$T/piston.json" 2>"$T/piston.err" ||
    fail "piston-client: $(cat "$T/piston.err")"
jq -e '.language == "sh" and .version == "1.0"
       and .run.stdout == "args: 1 2 3\nstdin: hello\n" and .run.stderr == "oops\n"
       and .run.code == 3 and .run.signal == null
       and (.run.output | contains("oops"))' "$T/piston.json" >/dev/null ||
    fail "piston execute: $(cat "$T/piston.json")"
echo "ok: npm piston-client: runtimes, then execute with its defaults (args 1 2 3 appended)"

# POST /start over TCP: the answer is the NDJSON stream.
curl -s --max-time 120 -H 'Content-Type: application/json' \
    -d '{"lang":"sh","code":"echo over tcp"}' "$U/start" >"$T/tcp.ndjson"
jq -s -e '(map(select(.type=="output")) | .[0].data) == "over tcp\n" and (last | .type == "exit" and .status == 0)' \
    "$T/tcp.ndjson" >/dev/null || fail "/start over TCP: $(cat "$T/tcp.ndjson")"
echo "ok: POST /start over TCP streams the events"

# POST /judge: one build, a verdict per case.
jq -n '{lang: "sh", code: "read n; case $n in 7) kill -SEGV $$;; 9) sleep 30;; esac; echo $((n * 2))",
        limits: {timeout_ms: 5000},
        cases: [{stdin: "2\n", expected_stdout: "4\n"},
                {stdin: "3\n", expected_stdout: "7"},
                {stdin: "7\n", expected_stdout: "14"},
                {stdin: "9\n", expected_stdout: "18", limits: {timeout_ms: 1000}},
                {stdin: "5", expected_stdout: "10   \n\n"}]}' >"$T/judge.json"
s0=$(date +%s.%N)
code=$(curl -s --max-time 300 --unix-socket "$S" -o "$T/verdicts.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$T/judge.json" http://runvm/judge)
echo "FIGURE serve judge, 5 cases in one fresh VM, request to answer: $(echo "$(date +%s.%N) - $s0" | bc) s"
[ "$code" = 200 ] || fail "judge: $code $(cat "$T/verdicts.json")"
jq -e '[.cases[].verdict] == ["accepted","wrong_answer","runtime_error","time_limit","accepted"]
       and .build.status == "none" and .cases[0].stdout == "4\n" and .cases[2].signal == 11' \
    "$T/verdicts.json" >/dev/null || fail "verdicts: $(cat "$T/verdicts.json")"
echo "ok: judge: accepted, wrong_answer, runtime_error, time_limit, accepted"

# GET /metrics: every metric the Grafana dashboard (deploy/) uses is there.
curl -s "$U/metrics" >"$T/metrics.txt"
grep -q '^runvm_serve_verdicts_total{verdict="time_limit"} 1$' "$T/metrics.txt" ||
    fail "metrics: $(grep verdicts "$T/metrics.txt")"
for m in $(grep -o 'runvm_serve_[a-z_]*' deploy/grafana-dashboard.json | sed 's/_bucket$//' | sort -u); do
    grep -q "^# TYPE $m " "$T/metrics.txt" || fail "the dashboard's $m is not in GET /metrics"
done
echo "ok: GET /metrics serves every metric the dashboard uses"

kill -TERM $pid
rc=0
wait $pid || rc=$?
unwatch_runvm
[ $rc = 0 ] || fail "serve exited $rc"
echo "ok: drained, exit 0"
