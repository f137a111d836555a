#!/usr/bin/env bash
# A guest that halts forever (reboot(RB_HALT_SYSTEM): every CPU in hlt with
# interrupts off) does not hang runvm: --timeout stops it with status 124,
# soon after the deadline, with 1 and 2 vCPUs.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
make_test_initrd
LIMIT=${RUNVM_TEST_HALT_TIMEOUT:-30}

for cpus in 1 2; do
    start=$(date +%s.%N)
    boot halt$cpus --initrd "$T/initrd.cpio.gz" --console --cpus $cpus --timeout "$LIMIT" \
        --cmdline "reboot=k panic=-1 quiet testinit_mode=halt"
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    expect_rc halt$cpus 124
    expect_sentinel halt$cpus $cpus 200000 262144
    grep -q 'System halted' "$T/halt$cpus.out" || fail "halt$cpus: guest did not halt"
    grep -q -- '--timeout' "$T/halt$cpus.out" || fail "halt$cpus: no timeout message"
    # Stopped within 5 s of the deadline, not left hanging.
    [ "$(echo "$secs < $LIMIT + 5" | bc)" = 1 ] || fail "halt$cpus: took ${secs}s for --timeout $LIMIT"
    echo "ok: halt$cpus stopped by --timeout $LIMIT after ${secs}s, status 124"
done
