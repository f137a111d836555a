#!/bin/sh
# Build the runvm guest kernel from Debian's linux-source-6.1 package and the
# config fragment in kernel/runvm.config (x86-64: a bzImage), or for
# ARCH=aarch64 that fragment less its x86-only options plus
# kernel/aarch64.config (cross-built with gcc-aarch64-linux-gnu: an
# uncompressed Image). The result is cached outside the
# clone, keyed by the source package version, the fragment and RECIPE (bump
# it when a change here changes the kernel built), so a machine pays for the
# build once. Concurrent callers wait on a lock instead of racing.
#
# usage: [ARCH=aarch64] scripts/build-kernel.sh OUT_IMAGE
set -eu
RECIPE=1
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
frag=$top/kernel/runvm.config
tarball=/usr/src/linux-source-6.1.tar.xz
cache=${RUNVM_CACHE:-$HOME/.cache/runvm}
arch=${ARCH:-$(uname -m)}
case $arch in
x86_64) kmake="ARCH=x86_64" target=bzImage built=arch/x86/boot/bzImage sub= ;;
aarch64)
    kmake="ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-" target=Image
    built=arch/arm64/boot/Image sub=aarch64-
    command -v aarch64-linux-gnu-gcc >/dev/null ||
        { echo "build-kernel: aarch64-linux-gnu-gcc missing — run 'make deps'" >&2; exit 1; }
    drop=$(sed -n 's/^# not on arm64: //p' "$top/kernel/aarch64.config" | tr -s ' \n' '|')
    merged=$(mktemp)
    trap 'rm -f "$merged"' EXIT
    { grep -Ev "^(${drop%|})=" "$frag"; cat "$top/kernel/aarch64.config"; } >"$merged"
    frag=$merged ;;
*) echo "build-kernel: no guest kernel for $arch" >&2; exit 1 ;;
esac

[ -r "$tarball" ] || {
    echo "build-kernel: $tarball missing — run 'make deps' (package linux-source-6.1)" >&2
    exit 1
}
ver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$ver $RECIPE"; cat "$frag"; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$sub$key
mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.lock"
if [ ! -s "$dir/$target" ] && ! flock -n 9; then
    echo "build-kernel: another build is running; waiting for it" >&2
    flock 9
fi
if [ ! -s "$dir/$target" ]; then
    echo "build-kernel: building linux-source-6.1 $ver (key $key); takes minutes, once" >&2
    src=$cache/kernel/src-$ver
    if [ ! -f "$src/.unpacked" ]; then
        rm -rf "$src" && mkdir -p "$src"
        tar -xf "$tarball" -C "$src" --strip-components=1
        touch "$src/.unpacked"
    fi
    obj=$cache/kernel/obj-$sub$key
    rm -rf "$obj" && mkdir -p "$obj"
    # shellcheck disable=SC2086
    make -s -C "$src" O="$obj" $kmake KCONFIG_ALLCONFIG="$frag" allnoconfig
    # Every option the fragment names must have survived dependency checks.
    missing=0
    grep -E '^CONFIG_[A-Z0-9_]+=' "$frag" | while IFS= read -r line; do
        opt=${line%%=*}; val=${line#*=}
        if [ "$val" = n ]; then
            grep -q "^$opt=" "$obj/.config" && { echo "build-kernel: $opt should be off" >&2; echo x; }
        else
            grep -qx "$line" "$obj/.config" || { echo "build-kernel: $line did not survive" >&2; echo x; }
        fi
    done | grep -q x && missing=1
    [ $missing = 0 ] || exit 1
    # shellcheck disable=SC2086
    make -s -C "$src" O="$obj" $kmake -j"$(nproc)" $target
    mkdir -p "$dir"
    cp "$obj/$built" "$dir/$target.tmp"
    cp "$obj/.config" "$dir/config"
    mv "$dir/$target.tmp" "$dir/$target"
    rm -rf "$obj"
fi
mkdir -p "$(dirname "$out")"
cp "$dir/$target" "$out"
cp "$dir/config" "$(dirname "$out")/config"
