/* Caps on what one image may cost the host: the bytes of one downloaded
 * blob, the file contents unpacked from all layers together, the entries
 * of the tree at once. A hostile or broken image meets one of them and the
 * build fails naming it, before the disk or the memory fills up. Each is
 * set by a flag or an environment variable (the flag wins). */
#ifndef RUNVM_BUILDER_LIMITS_H
#define RUNVM_BUILDER_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "initramfs-builder/tree.h"

#define LIMITS_DEFAULT_MAX_BLOB     (4ull << 30)
#define LIMITS_DEFAULT_MAX_UNPACKED (8ull << 30)
#define LIMITS_DEFAULT_MAX_ENTRIES  1000000ull

/* How a user sets each cap, for messages and --help. */
#define LIMITS_BLOB_HOW "--max-blob-size or RUNVM_BUILDER_MAX_BLOB_SIZE"
#define LIMITS_UNPACKED_HOW                                                    \
    "--max-unpacked-size or RUNVM_BUILDER_MAX_UNPACKED_SIZE"
#define LIMITS_ENTRIES_HOW "--max-entries or RUNVM_BUILDER_MAX_ENTRIES"

struct builder_limits {
    uint64_t max_blob;     /* bytes of one blob pulled or read */
    uint64_t max_unpacked; /* file bytes unpacked, every layer together */
    uint64_t max_entries;  /* live entries of the tree */
};

/* Fills `l` with the defaults (4 GiB, 8 GiB, 1 000 000). */
void limits_default(struct builder_limits *l);

/* Parses a size: decimal digits, optionally followed by K, M, G or T
 * (powers of 1024; "KiB" and the like too). Returns 0, or -EINVAL for
 * anything else, zero, or a size past 2^64. */
int limits_parse_size(const char *s, uint64_t *out)
    __attribute__((warn_unused_result));

/* Parses a count: decimal digits, not zero. Returns 0 or -EINVAL. */
int limits_parse_count(const char *s, uint64_t *out)
    __attribute__((warn_unused_result));

/* Sets the caps named by RUNVM_BUILDER_MAX_BLOB_SIZE,
 * RUNVM_BUILDER_MAX_UNPACKED_SIZE and RUNVM_BUILDER_MAX_ENTRIES where
 * they are set and not empty. Returns 0, or -EINVAL after writing which
 * variable is wrong into `why`. */
int limits_from_env(struct builder_limits *l, char *why, size_t len)
    __attribute__((warn_unused_result));

/* Writes a size for a message: "4 GiB", "1.5 MiB", "1000 bytes". */
void limits_format_size(uint64_t bytes, char *buf, size_t len);

/* Writes what a tree's last -EDQUOT means: which cap it met, its value and
 * how to raise it. */
void limits_tree_cap_text(const struct tree *t, char *buf, size_t len);

#endif
