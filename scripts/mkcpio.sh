#!/bin/sh
# Packs a directory into a cpio newc archive, deterministically (sorted
# names, fixed mtimes, root-owned), optionally gzip- or lz4-compressed by the
# output name's suffix. For test initramfs images; language images come from
# initramfs-builder.
#
# usage: scripts/mkcpio.sh DIR OUT[.gz|.lz4]
set -eu
dir=$1 out=$2
case $out in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$(dirname "$out")"
tmp=$out.tmp.$$
# GNU cpio's --reproducible; busybox's (the nested aarch64 host's) has
# its two halves under their own names.
repro=--reproducible
cpio --help 2>&1 | grep -q -- --reproducible ||
    repro="--ignore-devno --renumber-inodes"
# shellcheck disable=SC2086
(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 $repro) >"$tmp.cpio"
case $out in
*.gz) gzip -9n <"$tmp.cpio" >"$tmp" ;;
*.lz4) lz4 -q -l -9 -f "$tmp.cpio" "$tmp" ;;
*) cp "$tmp.cpio" "$tmp" ;;
esac
rm -f "$tmp.cpio"
mv "$tmp" "$out"
