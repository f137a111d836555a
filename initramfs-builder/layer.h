/* Applies tar layers (plain or compressed with gzip, zstd, xz or bzip2)
 * to a tree. */
#ifndef RUNVM_BUILDER_LAYER_H
#define RUNVM_BUILDER_LAYER_H

#include "initramfs-builder/tree.h"

struct archive;

/* What a layer may be, for messages. */
#define LAYER_COMPRESSIONS "plain or compressed with gzip, zstd, xz or bzip2"

/* Enables on reader `a` the decompressors a layer may need (OCI image-spec
 * layer.md: gzip and zstd; xz, lzma and bzip2 from older tools), each only
 * where libarchive runs it in-process: where it would start an external
 * program instead (always for lrzip, lzop, grzip; for the others when
 * built without their library) it stays off, so that no layer ever starts
 * a process. Returns 0 or -errno. */
int layer_support_filters(struct archive *a)
    __attribute__((warn_unused_result));

/* Applies every entry of an opened libarchive reader as the tree's current
 * layer. `what` names the layer in messages. Returns 0 or -errno (message
 * printed; -EDQUOT when the tree met one of its caps). */
int layer_apply_archive(struct tree *t, struct archive *a, const char *what)
    __attribute__((warn_unused_result));

/* Opens `path` (tar, optionally gzip/zstd/xz/bzip2 compressed) and applies
 * it as the next layer. Returns 0 or -errno (message printed; -ENOTSUP
 * for a compression whose decompressor is a program). */
int layer_apply_file(struct tree *t, const char *path, const char *what)
    __attribute__((warn_unused_result));

/* Applies a directory tree on the host (not following symlinks) as the next
 * layer; hard links are kept. */
int layer_apply_dir(struct tree *t, const char *dir)
    __attribute__((warn_unused_result));

#endif
