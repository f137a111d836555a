/* Applies tar layers (any compression libarchive detects) to a tree. */
#ifndef RUNVM_BUILDER_LAYER_H
#define RUNVM_BUILDER_LAYER_H

#include "initramfs-builder/tree.h"

struct archive;

/* Applies every entry of an opened libarchive reader as the tree's current
 * layer. `what` names the layer in messages. Returns 0 or -errno (message
 * printed; -EDQUOT when the tree met one of its caps). */
int layer_apply_archive(struct tree *t, struct archive *a, const char *what)
    __attribute__((warn_unused_result));

/* Opens `path` (tar, optionally gzip/xz/zstd/bzip2 compressed) and applies
 * it as the next layer. */
int layer_apply_file(struct tree *t, const char *path, const char *what)
    __attribute__((warn_unused_result));

/* Applies a directory tree on the host (not following symlinks) as the next
 * layer; hard links are kept. */
int layer_apply_dir(struct tree *t, const char *dir)
    __attribute__((warn_unused_result));

#endif
