/* libFuzzer target: the image builder's layer reader
 * (initramfs-builder/layer.c) on real libarchive input: tar layers, plain
 * or compressed with anything layer_support_filters lets in, applied in
 * turn to one tree, which is then checked (tests/fuzz/tree_check.h), read
 * back and written as a cpio.
 *
 * Byte 0: bits 0-1: layers - 1 (up to 3); bit 2: through
 * layer_apply_file (the layer written to a file, as the builder reads a
 * pulled blob) rather than from memory; bit 3: tight caps (64 KiB of
 * contents, 64 entries), so the -EDQUOT paths are met. Each layer but the
 * last is a u16 length and that many bytes; the last is the rest. */
#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/cpio.h"
#include "initramfs-builder/layer.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/tree.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/tree_check.h"

#define TIGHT_BYTES   (64u << 10)
#define TIGHT_ENTRIES 64
#define LOOSE_BYTES   (16u << 20) /* keeps a decompression bomb cheap */
#define LOOSE_ENTRIES 100000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the spool, a layer written out and the cpio go: tmpfs where there
 * is one, since the cpio writer fsyncs (on a disk, 5 ms a run). */
static const char *scratch_dir;
static char scratch[64];

/* As layer_apply_file, from memory. */
static int apply_memory(struct tree *t, const uint8_t *p, size_t n)
{
    struct archive *a = archive_read_new();
    if (!a)
        return -ENOMEM;
    int err = layer_support_filters(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    tree_next_layer(t);
    if (!err && archive_read_open_memory(a, p, n) != ARCHIVE_OK)
        err = -EIO;
    else if (!err)
        err = layer_apply_archive(t, a, "layer");
    archive_read_free(a);
    return err;
}

static int apply_file(struct tree *t, const uint8_t *p, size_t n)
{
    int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    check_that(fd >= 0, "cannot write the layer file");
    check_that(write(fd, p, n) == (ssize_t)n, "cannot write the layer file");
    close(fd);
    int err = layer_apply_file(t, scratch, "layer");
    unlink(scratch);
    return err;
}

/* Caps held, and every file's contents readable back from the spool. */
static void check_contents(struct tree *t)
{
    check_that(!t->max_entries || t->nlive <= t->max_entries,
               "more entries than the cap");
    check_that(!t->max_bytes || t->spool_size <= t->max_bytes,
               "more bytes spooled than the cap");
    size_t n;
    struct tree_entry **v = tree_sorted(t, &n);
    if (!v)
        return;
    uint8_t buf[4096];
    for (size_t i = 0; i < n; i++) {
        const struct tree_content *c = v[i]->content;
        if (!S_ISREG(v[i]->mode)) {
            check_that(!c, "contents on an entry that is not a file");
            continue;
        }
        check_that(c && c->refs > 0, "a file without contents");
        check_that(c->offset + c->size <= t->spool_size,
                   "contents past the end of the spool");
        for (uint64_t off = 0; off < c->size; off += sizeof(buf)) {
            size_t len = c->size - off < sizeof(buf) ? (size_t)(c->size - off)
                                                     : sizeof(buf);
            check_that(tree_read_content(t, c, off, buf, len) == 0,
                       "contents cannot be read back");
        }
    }
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch_dir) {
        progress_set_quiet(1);
        scratch_dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(scratch, sizeof(scratch), "%s/fuzz_layer.%d", scratch_dir,
                 (int)getpid());
    }
    struct cursor in;
    cursor_init(&in, data, size);
    uint8_t mode = cursor_u8(&in);
    unsigned int layers = (mode & 3u) + 1;
    struct tree t;
    if (tree_init(&t, scratch_dir) != 0)
        return 0;
    bool tight = mode & 8;
    t.max_bytes = tight ? TIGHT_BYTES : LOOSE_BYTES;
    t.max_entries = tight ? TIGHT_ENTRIES : LOOSE_ENTRIES;
    for (unsigned int i = 0; i < layers && !cursor_empty(&in); i++) {
        const uint8_t *p;
        size_t n = i + 1 < layers ? cursor_bytes(&in, cursor_u16(&in), &p)
                                  : cursor_bytes(&in, in.left, &p);
        int err = mode & 4 ? apply_file(&t, p, n) : apply_memory(&t, p, n);
        check_that(err != -EDQUOT || t.cap_hit != TREE_CAP_NONE,
                   "-EDQUOT without a cap met");
        if (err)
            break; /* the builder stops at a failed layer */
    }
    tree_check(&t);
    check_contents(&t);
    struct cpio_stats st;
    if (cpio_write_tree(&t, scratch, CPIO_NONE, &st) == 0)
        check_that(st.entries + 1 == t.nlive,
                   "the cpio holds other entries than the tree");
    unlink(scratch);
    tree_free(&t);
    return 0;
}
