#!/usr/bin/env bash
# runvm boots the project kernel with a standalone initramfs to testinit's
# sentinel, with 1 and 2 vCPUs and 256 and 3584 MiB (RAM above the MMIO
# hole on x86), with gzip, lz4 and uncompressed cpio, and exits 0 when the
# guest reboots (x86: reboot=k, an i8042 reset; aarch64: PSCI SYSTEM_RESET).
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
make_test_initrd
CMD="reboot=k panic=-1 quiet"

boot cpu1-256 --initrd "$T/initrd.cpio.gz" --console --mem 256 --cpus 1 --cmdline "$CMD" --boot-timer
expect_rc cpu1-256 0
expect_sentinel cpu1-256 1 200000 262144
case $(uname -m) in
aarch64) reset='stopped: guest reset$' how='PSCI SYSTEM_RESET' ;;
*) reset='stopped: guest reset (i8042)' how='the i8042 reset' ;;
esac
grep -q "$reset" "$T/cpu1-256.out" || fail "cpu1-256: not stopped by $how"

boot cpu2-256 --initrd "$T/initrd.cpio.gz" --console --mem 256 --cpus 2 --cmdline "$CMD"
expect_rc cpu2-256 0
expect_sentinel cpu2-256 2 200000 262144

# 3584 MiB: 3 GiB below the hole, 512 MiB above 4 GiB.
boot cpu2-3584 --initrd "$T/initrd.cpio.gz" --console --mem 3584 --cpus 2 --cmdline "$CMD"
expect_rc cpu2-3584 0
expect_sentinel cpu2-3584 2 3400000 3670016

boot cpu1-3584 --initrd "$T/initrd.cpio.gz" --console --mem 3584 --cpus 1 --cmdline "$CMD"
expect_rc cpu1-3584 0
expect_sentinel cpu1-3584 1 3400000 3670016

# The same initramfs lz4-compressed (where there is an lz4: not in the
# nested aarch64 host) and uncompressed.
if command -v lz4 >/dev/null; then
    make_test_initrd "$T/initrd.cpio.lz4"
    boot lz4 --initrd "$T/initrd.cpio.lz4" --console --cmdline "$CMD"
    expect_rc lz4 0
    expect_sentinel lz4 1 200000 262144
fi
make_test_initrd "$T/initrd.cpio"
boot plain --initrd "$T/initrd.cpio" --console --cmdline "$CMD"
expect_rc plain 0
expect_sentinel plain 1 200000 262144

grep -a 'boot-timer\|memory:' "$T/cpu1-256.out" | sed 's/^/FIGURE cpu1-256 /'
