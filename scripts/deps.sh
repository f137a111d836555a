#!/bin/sh
# Install the Debian packages runvm needs to build, test and benchmark.
# Idempotent and fast when everything is already there.
set -eu
pkgs="build-essential clang clang-format make pkg-config cpio lz4 gzip xz-utils bc bison
flex libelf-dev libssl-dev dwarves kmod rsync busybox-static
linux-source-6.1 linux-image-amd64 qemu-system-x86 qemu-utils
qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static arch-test
libcmocka-dev libarchive-dev libcurl4-openssl-dev libjansson-dev zlib1g-dev libseccomp-dev
libfdt-dev libmicrohttpd-dev docker-registry skopeo mmdebstrap iproute2 haproxy gnuplot-nox strace
iputils-ping
curl"
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
# npm for the client libraries tests use (scripts/clients.sh): Debian's,
# unless a node with its npm is there already (NodeSource's nodejs carries
# npm and conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# dpkg's arm64 architecture: tests/kvmhost/kvmhost --arch aarch64 fetches
# the arm64 kernel, busybox-static and bash-static with apt-get download.
arm64=
dpkg --print-foreign-architectures | grep -qx arm64 || arm64=yes
[ -z "$missing$arm64" ] && { echo "deps: all packages present"; exit 0; }
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$arm64" ]; then
    echo "deps: adding dpkg's arm64 architecture"
    $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -q
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
