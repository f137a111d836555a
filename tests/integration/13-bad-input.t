#!/usr/bin/env bash
# Bad input gets one clear line on stderr and a non-zero status, never a
# crash: missing files, not a bzImage, truncated kernel, initramfs too big,
# --mem/--cpus out of range, unknown flag, no /dev/kvm, no permission.
set -uo pipefail
. tests/integration/boot-lib.sh
for f in "$RUNVM" "$KERNEL"; do
    [ -e "$f" ] || { echo "skip: $f missing"; exit 77; }
done
echo x >"$T/small"
head -c 100000 "$KERNEL" >"$T/truncated"
truncate -s 300M "$T/big.cpio"
printf 'fake' >"$T/initrd"

# check NAME WANT_RC PATTERN -- ARGS...
check() {
    local name=$1 want=$2 pat=$3; shift 4
    local rc=0
    "$RUNVM" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
    local lines
    lines=$(wc -l <"$T/err")
    if [ "$rc" != "$want" ] || ! grep -q -- "$pat" "$T/err" || [ "$lines" != 1 ]; then
        echo "FAIL: $name: status $rc (want $want), stderr:"; cat "$T/err"
        exit 1
    fi
    echo "ok: $name: $(cat "$T/err")"
}
K=(--kernel "$KERNEL")
check unknown-flag 2 'unknown option --frobnicate' -- "${K[@]}" --initrd "$T/initrd" --frobnicate
check missing-value 2 'needs a value' -- "${K[@]}" --initrd
check no-kernel 2 'kernel KERNEL is required' -- --initrd "$T/initrd"
check mem-low 2 'out of range' -- "${K[@]}" --initrd "$T/initrd" --mem 1
check mem-high 2 'out of range' -- "${K[@]}" --initrd "$T/initrd" --mem 99999999
check mem-junk 2 'not a number' -- "${K[@]}" --initrd "$T/initrd" --mem 12abc
check mem-negative 2 'not a number' -- "${K[@]}" --initrd "$T/initrd" --mem -5
check cpus-zero 2 'out of range' -- "${K[@]}" --initrd "$T/initrd" --cpus 0
check cpus-high 2 'out of range' -- "${K[@]}" --initrd "$T/initrd" --cpus 33
check timeout-zero 2 'out of range' -- "${K[@]}" --initrd "$T/initrd" --timeout 0
check missing-kernel 125 'No such file' -- --kernel "$T/nope" --initrd "$T/initrd"
check missing-initrd 125 'No such file' -- "${K[@]}" --initrd "$T/nope"
check directory 125 'not a regular file' -- --kernel "$T" --initrd "$T/initrd"
case $(uname -m) in
aarch64)
    check not-image 125 'too short for an arm64 kernel Image' -- --kernel "$T/small" --initrd "$T/initrd"
    check elf 125 'not an arm64 Image' -- --kernel /bin/sh --initrd "$T/initrd"
    gzip -c "$KERNEL" >"$T/Image.gz"
    check image-gz 125 'a gzip-compressed kernel' -- --kernel "$T/Image.gz" --initrd "$T/initrd"
    # (An Image's header cannot show a truncated file: its image_size
    # counts the BSS as well.)
    mid=60M mid_mem=64 ;;
*)
    check not-bzimage 125 'too short to be a bzImage' -- --kernel "$T/small" --initrd "$T/initrd"
    check elf 125 'not a Linux bzImage' -- --kernel /bin/sh --initrd "$T/initrd"
    check truncated 125 'truncated' -- --kernel "$T/truncated" --initrd "$T/initrd"
    mid=30M mid_mem=48 ;;
esac
check initrd-too-big 125 'does not fit' -- "${K[@]}" --initrd "$T/big.cpio" --mem 256
if scripts/kvm-usable -q; then
    # Fits in RAM, but not above the kernel: caught at load.
    truncate -s $mid "$T/mid.cpio"
    check initrd-above-kernel 125 'raise --mem' -- "${K[@]}" --initrd "$T/mid.cpio" --mem $mid_mem
fi
"$RUNVM" --kernel "$KERNEL" --help >"$T/help" && grep -q -- --boot-timer "$T/help" || { echo "FAIL: --help"; exit 1; }

# No /dev/kvm, and /dev/kvm without permission: a private /dev.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
    setpriv --help 2>&1 | grep -q -- --reuid; then
    cp "$RUNVM" "$T/runvm"
    unshare -m sh -c "mount -t tmpfs none /dev && \"$T/runvm\" --kernel \"$KERNEL\" --initrd \"$T/initrd\"" \
        >"$T/out" 2>"$T/err"; rc=$?
    grep -q 'KVM is not available' "$T/err" && [ $rc = 125 ] ||
        { echo "FAIL: no-kvm: status $rc"; cat "$T/err"; exit 1; }
    echo "ok: no-kvm: $(cat "$T/err")"
    chmod 755 "$T"
    cp "$KERNEL" "$T/k"; chmod 644 "$T/k" "$T/initrd"
    unshare -m sh -c "mount -t tmpfs none /dev && mknod -m 600 /dev/kvm c 10 232 && \
        setpriv --reuid=65534 --regid=65534 --clear-groups \"$T/runvm\" --kernel \"$T/k\" --initrd \"$T/initrd\"" \
        >"$T/out" 2>"$T/err"; rc=$?
    grep -q 'permission denied — add yourself to the kvm group' "$T/err" && [ $rc = 125 ] ||
        { echo "FAIL: kvm-eacces: status $rc"; cat "$T/err"; exit 1; }
    echo "ok: kvm-eacces: $(cat "$T/err")"
else
    echo "note: not root, or no unshare or util-linux setpriv: /dev/kvm error cases not run"
fi
