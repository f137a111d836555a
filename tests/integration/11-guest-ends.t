#!/usr/bin/env bash
# Every way a guest ends itself ends runvm with status 0: i8042 reset
# (reboot=k), triple fault (reboot=t), and a kernel panic with panic=-1
# (init exits). runvm --boot-timer says which one it saw. The kernel
# places itself at random (KASLR): two panics show two offsets.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
make_test_initrd

boot kbd --initrd "$T/initrd.cpio.gz" --console --boot-timer --cmdline "reboot=k panic=-1 quiet"
expect_rc kbd 0
expect_sentinel kbd 1 200000 262144
grep -q 'stopped: guest reset (i8042)' "$T/kbd.out" || fail "kbd: not an i8042 reset"

boot triple --initrd "$T/initrd.cpio.gz" --console --boot-timer --cmdline "reboot=t panic=-1 quiet"
expect_rc triple 0
expect_sentinel triple 1 200000 262144
grep -q 'stopped: guest triple fault' "$T/triple.out" || { cat "$T/triple.out"; fail "triple: not a triple fault"; }

boot panic --initrd "$T/initrd.cpio.gz" --console --boot-timer --cmdline "reboot=k panic=-1 testinit_mode=panic"
expect_rc panic 0
expect_sentinel panic 1 200000 262144
grep -q 'Kernel panic' "$T/panic.out" || fail "panic: the kernel did not panic"
grep -q 'stopped: guest reset (i8042)' "$T/panic.out" || fail "panic: did not end in a reset"
echo "ok: reboot=k, reboot=t and panic=-1 all end runvm with 0"

# KASLR (kernel/runvm.config): a panic prints the kernel's offset, which
# differs from one boot to the next.
boot panic2 --initrd "$T/initrd.cpio.gz" --console --cmdline "reboot=k panic=-1 testinit_mode=panic"
expect_rc panic2 0
off1=$(grep -a -o 'Kernel Offset: [^ ]*' "$T/panic.out" | tr -d '\r')
off2=$(grep -a -o 'Kernel Offset: [^ ]*' "$T/panic2.out" | tr -d '\r')
case $off1 in "Kernel Offset: 0x"*) ;; *) fail "KASLR: panic says '$off1'" ;; esac
[ "$off1" != "$off2" ] || fail "KASLR: the same offset twice ($off1)"
echo "ok: KASLR: ${off1#Kernel Offset: } then ${off2#Kernel Offset: }"
