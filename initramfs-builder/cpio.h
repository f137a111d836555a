/* Deterministic cpio "newc" writer with optional gzip or legacy-lz4
 * compression — the formats Linux's initramfs unpacker reads
 * (Documentation/driver-api/early-userspace/buffer-format.rst). */
#ifndef RUNVM_BUILDER_CPIO_H
#define RUNVM_BUILDER_CPIO_H

#include <stdint.h>

#include "initramfs-builder/tree.h"

enum cpio_compress { CPIO_NONE, CPIO_GZIP, CPIO_LZ4 };

struct cpio_stats {
    uint64_t entries;
    uint64_t raw_bytes;        /* uncompressed archive size */
    uint64_t compressed_bytes; /* file size written */
};

/* Parses "none", "gzip", "lz4"; returns 0 or -EINVAL. */
int cpio_parse_compress(const char *s, enum cpio_compress *out)
    __attribute__((warn_unused_result));

/* Writes the tree to `path` (through "path.tmp", renamed when complete):
 * entries sorted by path so parents precede children, mtimes 0, inode
 * numbers assigned in that order, hard links sharing one inode with the
 * data on the group's last entry (GNU cpio's newc convention, which the
 * kernel also accepts), the root itself omitted. Byte-identical output for
 * an identical tree. Returns 0 or -errno (message printed). */
int cpio_write_tree(struct tree *t, const char *path,
                    enum cpio_compress compress, struct cpio_stats *stats)
    __attribute__((warn_unused_result));

#endif
