#!/bin/sh
# Benchmark (reports, asserts nothing): how long the guest kernel takes to
# unpack an initramfs, per compression, so the default is chosen by
# measurement. Boots the kernel under QEMU (KVM when /dev/kvm is usable,
# else TCG — then compare ratios only, absolute times are 25-40x off) with
# initramfs_async=0 and initcall_debug, and reads populate_rootfs's time.
#
#   initramfs-builder/bench-unpack.sh KERNEL IMAGE...
set -eu
kernel=$1; shift
accel=tcg
[ -w /dev/kvm ] && accel=kvm
for img in "$@"; do
    raw=$(case $img in
        *.gz) gzip -dc "$img" | wc -c ;;
        *.lz4) lz4 -dc "$img" | wc -c ;;
        *) wc -c <"$img" ;;
        esac)
    mem=$(( (raw + $(wc -c <"$img")) / 1048576 * 2 + 256 ))
    line=$(timeout 900 qemu-system-x86_64 -accel $accel -cpu max -m "$mem" \
        -M microvm,acpi=off -nodefaults -no-user-config -nographic \
        -serial stdio -no-reboot -kernel "$kernel" -initrd "$img" \
        -append "console=ttyS0 initramfs_async=0 initcall_debug ignore_loglevel panic=-1 reboot=t rdinit=/nonexistent" \
        2>&1 | grep -m1 'populate_rootfs.*returned' || true)
    us=$(printf '%s\n' "$line" | sed -n 's/.*after \([0-9]*\) usecs.*/\1/p')
    printf '%-40s %8.1f MiB on disk %8.1f MiB cpio  unpack %s ms (%s)\n' \
        "$img" "$(echo "$(wc -c <"$img") / 1048576" | bc -l)" \
        "$(echo "$raw / 1048576" | bc -l)" \
        "$( [ -n "$us" ] && echo "$us / 1000" | bc || echo '?')" "$accel"
done
