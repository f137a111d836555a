#!/usr/bin/env bash
# Raw KVM ioctls: x86 real-mode code computes a value, writes it to a port
# and halts; on aarch64 a store to an address outside RAM exits as MMIO.
# kvm_smoke checks each exit.
set -euo pipefail
out=$("$B/tests/kvm_smoke")
echo "$out"
case $(uname -m) in
aarch64) grep -qx 'KVM_EXIT_MMIO: write of 8 bytes at 0x10000000, data 0x42' <<<"$out" ;;
*) grep -qx 'kvm_smoke: exit 0: out port 0x10 size 1 value 0x2a' <<<"$out" ;;
esac
grep -qx 'kvm_smoke: ok' <<<"$out"
