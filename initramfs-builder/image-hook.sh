#!/bin/sh
# mmdebstrap customize hook: prepares and checks a language rootfs.
#   image-hook.sh ROOT CONF HELLO_DIR TOOLCHAIN_OUT
#   image-hook.sh --check ROOT CONF HELLO_DIR
# Builds and runs the language's hello world in a chroot of ROOT with the
# config's BUILD/RUN/ENV (as root, which also warms caches such as Go's
# GOCACHE), opens the WRITABLE dirs to the agent's unprivileged user, records
# `VERSION_CMD` output in TOOLCHAIN_OUT and cleans what the run left.
# --check only builds and runs hello world, as the agent's user (uid 1000),
# in an unpacked final image: it proves DROP left the toolchain working.
set -eu
check=
if [ "$1" = --check ]; then check=1; shift; fi
root=$1 conf=$2 hello=$3 toolchain_out=${4:-}
user=
[ -z "$check" ] || user=--userspec=1000:1000
get() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }
source=$(get SOURCE)
[ -n "$source" ] || { echo "image-hook: $conf: no SOURCE=" >&2; exit 1; }
[ -f "$hello/$source" ] || { echo "image-hook: no $hello/$source" >&2; exit 1; }
# ENV=K=V lines become env(1) arguments; BUILD/RUN use shell quoting, which
# is what the agent's word splitting implements.
envs=$(sed -n 's/^ENV=//p' "$conf" | sed "s/'/'\\\\''/g; s/.*/'&'/" | tr '\n' ' ')
work=/tmp/runvm-hello
rm -rf "$root$work"
mkdir -p "$root$work"
cp "$hello/$source" "$root$work/"
[ -z "$check" ] || chown -R 1000:1000 "$root$work"
run_step() { # NAME ARGV-STRING
    [ -n "$2" ] || return 0
    echo "image-hook: $1: $2" >&2
    eval "chroot $user \"\$root\" /usr/bin/env -i HOME=$work $envs \
        /bin/sh -c 'cd $work && exec \"\$@\"' sh $2"
}
run_step build "$(get BUILD)"
out=$(run_step run "$(get RUN)")
if [ "$out" != "hello, world" ]; then
    echo "image-hook: hello world printed '$out', expected 'hello, world'" >&2
    exit 1
fi
echo "image-hook: hello world ok${check:+ (final image, uid 1000)}" >&2
[ -z "$check" ] || exit 0
vcmd=$(get VERSION_CMD)
if [ -n "$vcmd" ]; then
    eval "chroot \"\$root\" /usr/bin/env -i $envs $vcmd" | head -n 1 >"$toolchain_out"
fi
for d in $(get WRITABLE); do
    mkdir -p "$root$d"
    chmod -R a+rwX "$root$d"
done
rm -rf "$root$work" "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/log/apt "$root"/var/log/dpkg.log "$root"/var/cache/ldconfig/*
# The packages in the image, for the cache key record.
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' >"$toolchain_out.packages"
