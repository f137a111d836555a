#!/usr/bin/env bash
# More of the one-shot CLI: Rust hello world, and two Go VMs at once, each
# with its own output and status.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
if image_built rust; then
    rc=0
    timeout 900 "$RUNVM" --lang rust examples/hello.rs >"$T/rs.out" 2>"$T/rs.err" </dev/null || rc=$?
    [ "$rc" = 0 ] || { tail -20 "$T/rs.err"; fail "rust hello: status $rc"; }
    [ "$(cat "$T/rs.out")" = "hello, world" ] || fail "rust hello: $(head -c 200 "$T/rs.out")"
    echo "ok: rust hello"
else
    echo "note: no rust image, rust hello not run"
fi
image_require go
printf 'package main\nimport "os"\nfunc main() { os.Stdout.WriteString("second\\n"); os.Exit(5) }\n' >"$T/second.go"
# Cold boots (--no-snapshot): two Go VMs restored from one snapshot at
# once meet the nested host's page-fault storm (tests/kvmhost/README.md)
# about one pair in ten, cold pairs more rarely; 36-snapshot restores two
# small VMs at once.
# --boot-timer: a VM that fails shows its KVM counters, where run-inside
# finds the storm's mark (pf_guest) and calls it no verdict.
timeout 900 "$RUNVM" --lang go --no-snapshot --boot-timer examples/hello.go >"$T/a.out" 2>"$T/a.err" </dev/null & a=$!
timeout 900 "$RUNVM" --lang go --no-snapshot --boot-timer "$T/second.go" >"$T/b.out" 2>"$T/b.err" </dev/null & b=$!
rca=0; wait $a || rca=$?
rcb=0; wait $b || rcb=$?
why() { tail -n 5 "$1"; grep -h 'kvm-exits' "$1" || true; }
[ "$rca" = 0 ] && [ "$(cat "$T/a.out")" = "hello, world" ] || { why "$T/a.err"; fail "VM a: $rca $(cat "$T/a.out")"; }
[ "$rcb" = 5 ] && [ "$(cat "$T/b.out")" = "second" ] || { why "$T/b.err"; fail "VM b: $rcb $(cat "$T/b.out")"; }
echo "ok: two VMs at once, outputs and statuses apart"
