#!/bin/sh
# Lets this x86-64 machine run arm64 programs, as building arm64 language
# images needs (mmdebstrap --architectures=arm64 runs the image's own
# apt, dpkg and compilers): registers qemu-user-static's aarch64 handler
# with binfmt_misc (the F flag: the kernel keeps the interpreter open, so
# chroots need no copy of it), mounting binfmt_misc first where it is not.
# Idempotent.
set -eu
dir=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
[ -e "$dir/qemu-aarch64" ] && exit 0
[ -r "$conf" ] || { echo "binfmt-arm64: $conf missing — run 'make deps' (qemu-user-static)" >&2; exit 1; }
[ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir" ||
    { echo "binfmt-arm64: cannot mount binfmt_misc (needs root)" >&2; exit 1; }
cat "$conf" >"$dir/register"
