/* In-memory root filesystem tree built from image layers.
 *
 * Nothing here touches the host filesystem: every entry lives in a table
 * keyed by its normalized path ("usr/bin/go", root is ""), file contents are
 * appended to one anonymous spool file, and the cpio writer reads them back.
 * That makes path escapes impossible by construction: a hostile layer can at
 * worst place entries at odd places *inside* the tree.
 */
#ifndef RUNVM_BUILDER_TREE_H
#define RUNVM_BUILDER_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Shared by all hard links to one file; `refs` counts tree entries. */
struct tree_content {
    uint64_t offset; /* in the spool file */
    uint64_t size;
    unsigned refs;
    uint32_t ino;     /* assigned by the writer */
    unsigned emitted; /* writer: links of this group written so far */
};

struct tree_entry {
    char *path;  /* normalized, no leading '/', never "" except root */
    mode_t mode; /* S_IFDIR, S_IFREG or S_IFLNK plus permission bits,
                    never S_ISUID or S_ISGID */
    uid_t uid;
    gid_t gid;
    unsigned layer; /* layer that last wrote it (whiteouts hide lower ones) */
    char *symlink;  /* target of a symlink, as stored */
    struct tree_content *content; /* regular files only */
    int live;
    /* The directory structure, so that removing a subtree visits only the
     * subtree: the parent (NULL for the root) and a doubly linked list of
     * the children, in no particular order. */
    struct tree_entry *parent, *children, *next, *prev;
    /* Nothing in this directory's subtree is of a layer before this one:
     * whiteouts of this layer removed those (0: not known). */
    unsigned cleared_below;
};

/* Which cap a tree_apply() that returned -EDQUOT met. */
enum tree_cap { TREE_CAP_NONE, TREE_CAP_BYTES, TREE_CAP_ENTRIES };

struct tree {
    struct tree_entry **slots; /* open-addressing hash of live entries */
    size_t nslots, nlive, nused;
    int spool_fd;
    uint64_t spool_size;
    unsigned layer; /* current layer number, from 1 */
    /* Caps, 0 for none (tree_init sets none): bytes spooled, every layer
     * together (contents a later layer replaces or whites out still take
     * their space in the spool, so they count), and live entries. */
    uint64_t max_bytes, max_entries;
    enum tree_cap cap_hit; /* set with -EDQUOT */
    /* Counters for the summary line and for tests. */
    unsigned long skipped_unsafe, skipped_devices, whiteouts;
    /* Entries written without the setuid or setgid bit their layer gave
     * them (tree_apply), as they were applied: one a later layer replaces
     * or whites out still counts. */
    unsigned long cleared_setid;
    /* Slots or entries examined to remove whiteout victims, opaque
     * directories' contents and replaced subtrees: their cost, which tests
     * bound. */
    unsigned long removal_steps;
};

/* A tar-like entry to apply; `name`/`target` are raw archive strings. */
enum tree_kind { TK_DIR, TK_FILE, TK_SYMLINK, TK_HARDLINK, TK_OTHER };

struct tree_input {
    const char *name;
    enum tree_kind kind;
    mode_t perm; /* permission bits; setuid and setgid are dropped */
    uid_t uid;
    gid_t gid;
    const char *target; /* symlink target or hard-link source */
};

/* Reads up to `len` bytes of the current entry's data; returns bytes read,
 * 0 at the end, or -errno. */
typedef ssize_t (*tree_read_fn)(void *opaque, void *buf, size_t len);

/* Initializes an empty tree holding only the root directory; contents spool
 * into an unlinked file in `spool_dir` (NULL: $TMPDIR or /tmp). */
int tree_init(struct tree *t, const char *spool_dir)
    __attribute__((warn_unused_result));
void tree_free(struct tree *t);

/* Starts the next layer: whiteouts in it hide only entries of earlier ones. */
void tree_next_layer(struct tree *t);

/* Normalizes an archive path into `out` (size `outlen`): drops leading '/',
 * "." and empty components, resolves ".." lexically. Returns 0, -EPERM when
 * ".." climbs above the root, -ENAMETOOLONG. The root normalizes to "". */
int tree_normalize(const char *name, char *out, size_t outlen);

/* Applies one archive entry: OCI whiteouts (".wh.NAME", ".wh..wh..opq"),
 * parents resolved inside the tree (symlinks followed but never out of it),
 * hard links to entries already present. An entry keeps its owner and its
 * permissions less setuid and setgid, which none keeps (cleared_setid
 * counts the entries that had them). Unsafe or unsupported entries are
 * skipped and counted (returns 0); returns -errno only for I/O errors
 * (reading the data or writing the spool, e.g. -ENOSPC), -ENOMEM, and
 * -EDQUOT when the entry would pass max_bytes or max_entries (cap_hit
 * says which). */
int tree_apply(struct tree *t, const struct tree_input *in, tree_read_fn read,
               void *opaque) __attribute__((warn_unused_result));

/* Adds or replaces a regular file with the given bytes (for /init, config). */
int tree_put_file(struct tree *t, const char *path, mode_t perm,
                  const void *data, size_t len)
    __attribute__((warn_unused_result));

/* Looks up a live entry by normalized path without following symlinks. */
struct tree_entry *tree_lookup(const struct tree *t, const char *path);

/* Removes every entry whose path matches one of the globs (fnmatch, '*'
 * crosses '/', pattern relative to '/'); a matched directory goes with its
 * subtree. Returns the number of entries removed. */
unsigned long tree_drop_globs(struct tree *t, char *const *globs,
                              size_t nglobs);

/* Returns the live entries sorted by path (parents before children); the
 * caller frees the array, not the entries. */
struct tree_entry **tree_sorted(const struct tree *t, size_t *count);

/* Reads `len` bytes of file contents at `offset` into `buf`. */
int tree_read_content(const struct tree *t, const struct tree_content *c,
                      uint64_t offset, void *buf, size_t len)
    __attribute__((warn_unused_result));

#endif
