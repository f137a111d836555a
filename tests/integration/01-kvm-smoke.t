#!/usr/bin/env bash
# Raw KVM ioctls: real-mode code computes a value, writes it to a port and
# halts; kvm_smoke checks each exit.
set -euo pipefail
out=$("$B/tests/kvm_smoke")
echo "$out"
grep -qx 'kvm_smoke: exit 0: out port 0x10 size 1 value 0x2a' <<<"$out"
grep -qx 'kvm_smoke: ok' <<<"$out"
