#!/usr/bin/env bash
# Language versions (docs/cli.md, "Versions"): the default Go and go@1.24
# run one after the other; a program that needs Go 1.22 fails to build on
# the default with 126 and runs on go@1.24; API mode serves one version and
# refuses a request for another with 400; an unknown version exits 125
# with the versions there are; an image picked for a version it does not
# hold is refused as stale with 125. The same pairs for Rust (126) and
# Python (a SyntaxError: exit 1) where their second images are built.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
image_require go
image_require go@1.24
run() { # NAME SPEC FILE [ARGS...]: stdout/stderr/status in $T/NAME.{out,err,rc}
    local name=$1 spec=$2 rc=0; shift 2
    timeout 900 "$RUNVM" --lang "$spec" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    echo "$rc" >"$T/$name.rc"
}
want() { # NAME RC [STDOUT]
    local got; got=$(cat "$T/$1.rc")
    [ "$got" = "$2" ] || { echo "--- stdout"; head -c 2000 "$T/$1.out"; echo "--- stderr"; tail -20 "$T/$1.err"; fail "$1: status $got, want $2"; }
    [ $# -lt 3 ] || [ "$(cat "$T/$1.out")" = "$3" ] || fail "$1: stdout '$(head -c 300 "$T/$1.out")', want '$3'"
}

"$RUNVM" --list-langs >"$T/list"
grep -Eq '^go +1\.19 +yes ' "$T/list" && grep -Eq '^go +1\.24 +golang ' "$T/list" ||
    { cat "$T/list"; fail "--list-langs: go 1.19 (default) and 1.24"; }
echo "ok: --list-langs shows both Go versions, 1.19 the default"

# Both versions, one after the other, each with its own toolchain.
run hello-default go examples/hello.go
want hello-default 0 "hello, world"
run hello-124 go@1.24 examples/hello.go
want hello-124 0 "hello, world"
echo "ok: hello world on go (1.19) and go@1.24"

run range-default go examples/versions/range_int.go
want range-default 126
grep -q 'cannot range over 3' "$T/range-default.err" || { cat "$T/range-default.err"; fail "go 1.19: no compiler message"; }
run range-124 go@1.24 examples/versions/range_int.go
want range-124 0 "0 1 2 "
run range-alias golang@1 examples/versions/range_int.go
want range-alias 0 "0 1 2 "
echo "ok: range over int: 126 on the default Go, runs on go@1.24 (and golang@1, the highest 1.x)"

# Unknown versions and languages: 125, with the versions there are.
for spec in go@1.2 go@1.240 go@2 go@9.9.9; do
    run "unknown-$spec" "$spec" examples/hello.go
    want "unknown-$spec" 125
    grep -q "go has no version ${spec#go@}; it has:" "$T/unknown-$spec.err" &&
        grep -q 'go@1.19 (default)' "$T/unknown-$spec.err" && grep -q 'go@1.24' "$T/unknown-$spec.err" ||
        { cat "$T/unknown-$spec.err"; fail "$spec: no list of versions"; }
done
run unknown-lang cobol examples/hello.go
want unknown-lang 125
grep -q 'no language "cobol"; there are: .*go' "$T/unknown-lang.err" || { cat "$T/unknown-lang.err"; fail "cobol: no list"; }
run bad-spec 'go@latest' examples/hello.go
want bad-spec 2
grep -q 'not a language: NAME or NAME@VERSION' "$T/bad-spec.err" || { cat "$T/bad-spec.err"; fail "go@latest: no usage message"; }
echo "ok: unknown versions and languages exit 125 with what there is; a malformed one is a usage error (2)"

# A stale image: the 1.19 image where 1.24 was asked for.
img119=$(awk '$1 == "go" && $2 == "1.19" { print $NF }' "$T/list")
run stale go@1.24 --initrd "$img119" examples/hello.go
want stale 125
grep -q 'image for go@1.24 is stale: its toolchain is "go version go1.19' "$T/stale.err" ||
    { cat "$T/stale.err"; fail "stale image not refused"; }
[ ! -s "$T/stale.out" ] || fail "stale image ran the program"
echo "ok: an image that holds another version is refused with 125"

# API mode is one version: /status says which; a request for another is 400.
S=$T/api.sock
export XDG_RUNTIME_DIR=$T/xdg
mkdir -p "$XDG_RUNTIME_DIR"
"$RUNVM" --lang go@1.24 --api-sock "$S" --boot-timer >"$T/api.out" 2>"$T/api.err" &
pid=$!
watch_runvm $pid "$T/api.err"
trap 'kill $pid 2>/dev/null || true' EXIT
c() { curl -s --max-time 300 --unix-socket "$S" -o "$T/body" -w '%{http_code}' "$@"; }
for _ in $(seq 600); do [ -S "$S" ] && break; sleep 0.1; done
[ -S "$S" ] || { cat "$T/api.err"; fail "no API socket"; }
for _ in $(seq 600); do
    c http://runvm/status >/dev/null && [ "$(jq -r .state "$T/body")" = ready ] && break
    sleep 0.5
done
jq -e '.version == "1.24" and (.toolchain | test("go1\\.24")) and
       ([.langs[] | select(.lang == "go") | .version] | index("1.19") != null)' "$T/body" >/dev/null ||
    { cat "$T/body"; fail "/status: version and langs"; }
code=$(c -H 'Content-Type: application/json' --data-binary '{"lang": "go", "code": "package main"}' http://runvm/start)
[ "$code" = 400 ] && jq -e '.error | test("serves go@1.24, not go")' "$T/body" >/dev/null ||
    fail "POST /start for the default Go on a go@1.24 server: $code $(cat "$T/body")"
jq -n --rawfile code examples/versions/range_int.go '{lang: "go@1.24", code: $code}' >"$T/req.json"
code=$(c -H 'Content-Type: application/json' --data-binary @"$T/req.json" http://runvm/start)
[ "$code" = 200 ] || fail "POST /start go@1.24: $code $(cat "$T/body")"
python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while (b := s.recv(65536)): sys.stdout.buffer.write(b)' "$(jq -r .output_socket "$T/body")" >"$T/range.ndjson"
jq -s -e '(map(select(.type=="output" and .stream=="stdout") | .data) | join("")) == "0 1 2 \n"
          and (last | .status == 0)' "$T/range.ndjson" >/dev/null || { cat "$T/range.ndjson"; fail "API go@1.24 run"; }
c -X PUT http://runvm/shutdown >/dev/null
rc=0; wait $pid || rc=$?
unwatch_runvm
trap - EXIT
[ "$rc" = 0 ] || { tail "$T/api.err"; fail "API runvm exited $rc"; }
echo "ok: API mode on go@1.24: /status version, 400 for another version, runs range over int"

# The other languages where both images are built.
if image_built rust && image_built rust@1.85; then
    run rs-default rust examples/versions/let_else.rs
    want rs-default 126
    run rs-185 rust@1.85 examples/versions/let_else.rs
    want rs-185 0 42
    echo "ok: let-else: 126 on the default Rust, runs on rust@1.85"
else
    echo "note: rust and rust@1.85 not both built; not run"
fi
if image_built python && image_built python@3.13; then
    run py-default python examples/versions/type_alias.py
    want py-default 1
    grep -q SyntaxError "$T/py-default.err" || { cat "$T/py-default.err"; fail "python 3.11: no SyntaxError"; }
    run py-313 python@3.13 examples/versions/type_alias.py
    want py-313 0 42
    echo "ok: type statement: SyntaxError (1) on the default Python, runs on python@3.13"
else
    echo "note: python and python@3.13 not both built; not run"
fi
