#!/bin/sh
# Builds one language version's image offline-style: mmdebstrap a Debian
# rootfs of the config's SUITE with its PACKAGES, check hello world in it,
# cache it, and turn it into an initramfs with initramfs-builder (rootfs:
# source).
#
#   initramfs-builder/mkimage.sh LANG[@VERSION] OUTDIR SUFFIX BUILDER AGENT
#
# writes OUTDIR/LANG@VERSION$SUFFIX (SUFFIX: .cpio.lz4, .cpio.gz or .cpio;
# make installs the configs beside them); LANG alone is the language's
# DEFAULT.
# The rootfs tarball is cached in ${RUNVM_CACHE:-~/.cache/runvm}/images/,
# keyed by the version's whole config (minus DROP), the hello-world source,
# the hook script, the mmdebstrap recipe, the builder version and the
# Debian suite's Release date (the archive state); with no network the
# newest tarball for the same config is reused.
# ARCH=aarch64 builds an arm64 image (mmdebstrap --architectures=arm64; its
# programs run here through qemu-user-static's binfmt_misc handler, which
# scripts/binfmt-arm64.sh registers).
set -eu
spec=$1 outdir=$2 suffix=$3 builder=$4 agent=$5
here=$(cd "$(dirname "$0")" && pwd)
cache=${RUNVM_CACHE:-$HOME/.cache/runvm}/images
mirror=${RUNVM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache" "$outdir"
# The whole config, INCLUDEs resolved, as the builder reads it: one parser.
flat=$(mktemp "${TMPDIR:-/tmp}/runvm-conf.XXXXXX")
trap 'rm -f "$flat"' EXIT
"$builder" --lang "$spec" --print-conf >"$flat"
get() { sed -n "s/^$1=//p" "$flat" | tail -n 1; }
lang=$(get LANG) version=$(get VERSION) suite=$(get SUITE)
name=$lang@$version
[ -n "$suite" ] || { echo "mkimage: $name: no SUITE= in its config" >&2; exit 1; }
out=$outdir/$name$suffix
source=$(get SOURCE)
start_all=$(date +%s)
arch=${ARCH:-$(uname -m)}
case $arch in
x86_64) debarch=amd64 archkey= ;;
aarch64) debarch=arm64 archkey=" arm64" ;;
*) echo "mkimage: no images for ARCH=$arch (x86_64, aarch64)" >&2; exit 1 ;;
esac

# DROP= only matters to initramfs-builder, so editing it keeps the rootfs.
# RECIPE names the mmdebstrap invocation below: bump it when that changes.
recipe="essential no-recommends 1"
confkey=$( { grep -v '^DROP=' "$flat"; cat "$here/langs/hello/$source" \
    "$here/image-hook.sh"; "$builder" --version; echo "$suite $mirror $recipe$archkey"; } |
    sha256sum | cut -c1-12)
# The suite's Release date names the archive state the packages come from.
stamp=$(curl -sf --max-time 20 -r 0-4095 "$mirror/dists/$suite/InRelease" |
    sed -n 's/^Date: *//p' | head -n 1 | tr -d '\r') || stamp=
if [ -n "$stamp" ]; then
    rootfs=$cache/$name-$confkey-$(printf %s "$stamp" | sha256sum | cut -c1-8).tar
else
    rootfs=$(ls -t "$cache/$name-$confkey"-*.tar 2>/dev/null | head -n 1) || true
    [ -n "$rootfs" ] || { echo "mkimage: $mirror unreachable and no cached rootfs for $name" >&2; exit 1; }
    echo "mkimage: $mirror unreachable; reusing $rootfs" >&2
fi

if [ -e "$rootfs" ]; then
    echo "mkimage: $name: cached rootfs $rootfs" >&2
else
    echo "mkimage: $name: mmdebstrap $suite + $(get PACKAGES) (archive of $stamp)" >&2
    start=$(date +%s)
    # mmdebstrap picks its output format from the name: keep ".tar" last.
    tmp=${rootfs%.tar}.tmp$$.tar
    trap 'rm -f "$flat" "$tmp" "$tmp.toolchain" "$tmp.toolchain.packages"' EXIT
    # No Recommends: lean images.
    # shellcheck disable=SC2046
    mmdebstrap --variant=essential --quiet --architectures="$debarch" \
        --aptopt='APT::Install-Recommends "false"' \
        --include="$(get PACKAGES | tr ' ' ',')" \
        --customize-hook="$here/image-hook.sh \"\$1\" $flat $here/langs/hello $tmp.toolchain" \
        "$suite" "$tmp" "$mirror"
    mv "$tmp.toolchain" "$rootfs.toolchain"
    mv "$tmp.toolchain.packages" "$rootfs.packages"
    mv "$tmp" "$rootfs"
    trap 'rm -f "$flat"' EXIT
    echo "mkimage: $name: rootfs in $(( $(date +%s) - start )) s" >&2
fi
# The image is a function of the rootfs, the agent, the builder and the
# config (DROP included): skip the rebuild and its check when none changed.
inputs=$( { echo "$rootfs"; cat "$flat" "$agent" "$builder"; } | sha256sum | cut -c1-16)
if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "mkimage: $name: $out up to date" >&2
    exit 0
fi
rm -f "$out.inputs"
set -- --lang "$name" --from "rootfs:$rootfs" -o "$out" --agent "$agent"
if [ -s "$rootfs.toolchain" ]; then
    set -- "$@" --set "TOOLCHAIN=$(cat "$rootfs.toolchain")"
fi
"$builder" "$@"

# Check the final image itself: unpack it and build + run hello world as the
# agent's user, so an over-eager DROP glob fails the build here.
check=$(mktemp -d "${TMPDIR:-/tmp}/runvm-check.XXXXXX")
trap 'rm -rf "$check" "$flat"' EXIT
chmod 755 "$check" # the image's root directory, entered as uid 1000
case $out in
*.gz) gzip -dc "$out" ;;
*.lz4) lz4 -dc "$out" ;;
*) cat "$out" ;;
esac | (cd "$check" && cpio -idm --quiet)
unpacked=$(du -sm "$check" | cut -f1)
start=$(date +%s%N)
# The guest's agent mounts /dev and /proc; here a private mount namespace
# lends the host's for the check and takes them away when it ends.
unshare --mount --propagation private sh -c '
    mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" &&
    exec "$2" --check "$1" "$3" "$4"' sh \
    "$check" "$here/image-hook.sh" "$flat" "$here/langs/hello"
echo "mkimage: $name: hello world build+run in the final image: $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
echo "$inputs" >"$out.inputs"
echo "mkimage: $name: $out: $(( $(wc -c <"$out") >> 20 )) MiB, $unpacked MiB unpacked, built in $(( $(date +%s) - start_all )) s" >&2
# runvm takes the first of LANG.cpio.gz, .cpio.lz4, .cpio it finds: drop the
# other compressions of this language so a stale one is never booted.
for other in "${out%.cpio*}.cpio" "${out%.cpio*}.cpio.gz" "${out%.cpio*}.cpio.lz4"; do
    [ "$other" = "$out" ] || rm -f "$other" "$other.inputs"
done
