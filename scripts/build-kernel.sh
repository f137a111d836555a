#!/bin/sh
# Build the runvm guest kernel from Debian's linux-source-6.1 package and the
# config fragment in kernel/runvm.config. The result is cached outside the
# clone, keyed by the source package version, the fragment and RECIPE (bump
# it when a change here changes the kernel built), so a machine pays for the
# build once. Concurrent callers wait on a lock instead of racing.
#
# usage: scripts/build-kernel.sh OUT_BZIMAGE
set -eu
RECIPE=1
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
frag=$top/kernel/runvm.config
tarball=/usr/src/linux-source-6.1.tar.xz
cache=${RUNVM_CACHE:-$HOME/.cache/runvm}

[ -r "$tarball" ] || {
    echo "build-kernel: $tarball missing — run 'make deps' (package linux-source-6.1)" >&2
    exit 1
}
ver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$ver $RECIPE"; cat "$frag"; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$key
mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.lock"
if [ ! -s "$dir/bzImage" ] && ! flock -n 9; then
    echo "build-kernel: another build is running; waiting for it" >&2
    flock 9
fi
if [ ! -s "$dir/bzImage" ]; then
    echo "build-kernel: building linux-source-6.1 $ver (key $key); takes minutes, once" >&2
    src=$cache/kernel/src-$ver
    if [ ! -f "$src/.unpacked" ]; then
        rm -rf "$src" && mkdir -p "$src"
        tar -xf "$tarball" -C "$src" --strip-components=1
        touch "$src/.unpacked"
    fi
    obj=$cache/kernel/obj-$key
    rm -rf "$obj" && mkdir -p "$obj"
    make -s -C "$src" O="$obj" ARCH=x86_64 KCONFIG_ALLCONFIG="$frag" allnoconfig
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
    make -s -C "$src" O="$obj" ARCH=x86_64 -j"$(nproc)" bzImage
    mkdir -p "$dir"
    cp "$obj/arch/x86/boot/bzImage" "$dir/bzImage.tmp"
    cp "$obj/.config" "$dir/config"
    mv "$dir/bzImage.tmp" "$dir/bzImage"
    rm -rf "$obj"
fi
mkdir -p "$(dirname "$out")"
cp "$dir/bzImage" "$out"
cp "$dir/config" "$(dirname "$out")/config"
