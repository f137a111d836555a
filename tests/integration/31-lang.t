#!/usr/bin/env bash
# The one-shot CLI as a user runs it: runvm --lang go FILE finds the kernel
# and the image itself. Hello world prints and exits 0; stdin reaches the
# program; a compile error shows the compiler's message and exits 126; an
# infinite loop stops at --timeout with 124; a panic keeps Go's status 2;
# --json prints NDJSON ending in one exit event.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
image_require go
lang() { # NAME ARGS... : stdout/stderr/rc in $T/NAME.{out,err,rc}, seconds in .secs
    local name=$1 rc=0 start; shift
    start=$(date +%s.%N)
    timeout 600 "$RUNVM" --lang go "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$(date +%s.%N) - $start" | bc >"$T/$name.secs"
    echo "$rc" >"$T/$name.rc"
}
want() { # NAME RC
    local got; got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] || { echo "--- stdout"; head -c 3000 "$T/$1.out"; echo "--- stderr"; tail -30 "$T/$1.err"; fail "$1: status $got, want $2"; }
}

lang hello examples/hello.go
want hello 0
[ "$(cat "$T/hello.out")" = "hello, world" ] || fail "hello: stdout $(head -c 200 "$T/hello.out")"
echo "ok: hello, world in $(cat "$T/hello.secs") s (cold runvm start to exit, nested KVM)"
echo "FIGURE lang go hello cold start to exit (nested KVM): $(cat "$T/hello.secs") s"

lang stdin examples/stdin.go --stdin examples/stdin.txt
want stdin 0
[ "$(cat "$T/stdin.out")" = 10 ] || fail "stdin: got $(cat "$T/stdin.out"), want 10"
echo "ok: stdin"

lang cerr examples/compile_error.go
want cerr 126
grep -q 'undefined: undefinedFunction' "$T/cerr.err" || { cat "$T/cerr.err"; fail "compile error: no compiler message"; }
[ ! -s "$T/cerr.out" ] || fail "compile error: compiler output on stdout"
echo "ok: compile error 126 with the compiler's message"

lang loop examples/infinite_loop.go --timeout 3
want loop 124
grep -q 'run step stopped at its time limit' "$T/loop.err" || { tail "$T/loop.err"; fail "loop: 124 not from runvm's own limit"; }
echo "ok: infinite loop stopped with 124"

lang panic examples/panic.go --json
want panic 2
if command -v jq >/dev/null; then
    tail -n1 "$T/panic.out" | jq -e '.type == "exit" and .exit_code == 2 and .status == 2' >/dev/null ||
        { cat "$T/panic.out"; fail "panic --json: last event"; }
    jq -s -e 'map(select(.type == "output" and .stream == "stderr") | .data) | join("") | test("something went wrong")' \
        "$T/panic.out" >/dev/null || { cat "$T/panic.out"; fail "panic --json: no panic message event"; }
else # the nested aarch64 host: runvm writes each event on one line, keys in this order
    tail -n1 "$T/panic.out" | grep -q '^{"type":"exit",.*"exit_code":2,.*"status":2}$' ||
        { cat "$T/panic.out"; fail "panic --json: last event"; }
    grep '"type":"output","phase":"run","stream":"stderr"' "$T/panic.out" |
        sed 's/.*"data":"\(.*\)"}$/\1/' | tr -d '\n' | grep -q 'something went wrong' ||
        { cat "$T/panic.out"; fail "panic --json: no panic message event"; }
fi
echo "ok: panic exits 2; --json events"
