/* Layer application: libarchive entries → tree_apply(). */
#include "initramfs-builder/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"

int layer_support_filters(struct archive *a)
{
    static int (*const filters[])(struct archive *) = {
        archive_read_support_filter_gzip,  archive_read_support_filter_zstd,
        archive_read_support_filter_xz,    archive_read_support_filter_lzma,
        archive_read_support_filter_bzip2,
    };
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        /* ARCHIVE_WARN means "will run an external program"; once asked
         * for, a filter cannot be taken back, so ask a scratch reader
         * first. */
        struct archive *probe = archive_read_new();
        if (!probe)
            return -ENOMEM;
        int r = filters[i](probe);
        archive_read_free(probe);
        if (r == ARCHIVE_OK && filters[i](a) != ARCHIVE_OK)
            return -EIO;
    }
    return 0;
}

/* Compressions libarchive knows but layer_support_filters() leaves off,
 * by their magic numbers: named in the error when such a layer fails.
 * Returns the name, and in *program whether libarchive would have run an
 * external program for it; NULL for none of them. */
static const char *refused_compression(const unsigned char *head, size_t n,
                                       int *program)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *name;
        int program;
    } known[] = {
        {"LRZI", 4, "lrzip", 1},
        {"\x89LZO\x00\r\n\x1a\n", 9, "lzop", 1},
        {"GRZipII\x00\x02\x04:)", 12, "grzip", 1},
        {"\x04\x22\x4d\x18", 4, "lz4", 0},
        {"\x02\x21\x4c\x18", 4, "lz4 (legacy)", 0},
        {"LZIP", 4, "lzip", 0},
        {"\x1f\x9d", 2, "compress (.Z)", 0},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (n >= known[i].len &&
            memcmp(head, known[i].magic, known[i].len) == 0) {
            *program = known[i].program;
            return known[i].name;
        }
    }
    return NULL;
}

static ssize_t archive_data_read(void *opaque, void *buf, size_t len)
{
    la_ssize_t n = archive_read_data(opaque, buf, len);
    if (n < 0)
        return -EIO;
    return n;
}

static enum tree_kind entry_kind(struct archive_entry *e)
{
    if (archive_entry_hardlink(e))
        return TK_HARDLINK;
    switch (archive_entry_filetype(e)) {
    case AE_IFDIR: return TK_DIR;
    case AE_IFREG: return TK_FILE;
    case AE_IFLNK: return TK_SYMLINK;
    default: return TK_OTHER; /* devices, fifos, sockets: skipped */
    }
}

int layer_apply_archive(struct tree *t, struct archive *a, const char *what)
{
    struct archive_entry *e;
    unsigned long n = 0;
    int r, err = 0;
    while ((r = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
        if (r == ARCHIVE_WARN) {
            progress("unpack: %s: %s", what, archive_error_string(a));
        } else if (r != ARCHIVE_OK) {
            progress_error("%s: %s — is it a tar layer, " LAYER_COMPRESSIONS
                           "? (other compressions are refused)",
                           what, archive_error_string(a));
            return -EIO;
        }
        const char *name = archive_entry_pathname(e);
        if (!name)
            continue;
        enum tree_kind kind = entry_kind(e);
        /* Name, type, permissions, owner and link target are all a layer
         * gives the tree. Its extended attributes (pax SCHILY.xattr.*
         * records, which libarchive reads into the entry), ACLs and file
         * flags stay here: no file capability (security.capability) reaches
         * the guest, and cpio newc could not carry one anyway. */
        struct tree_input in = {
            .name = name,
            .kind = kind,
            .perm = archive_entry_perm(e) & 07777,
            .uid = (uid_t)archive_entry_uid(e),
            .gid = (gid_t)archive_entry_gid(e),
            .target = kind == TK_HARDLINK  ? archive_entry_hardlink(e)
                      : kind == TK_SYMLINK ? archive_entry_symlink(e)
                                           : NULL,
        };
        err = tree_apply(t, &in, kind == TK_FILE ? archive_data_read : NULL, a);
        if (err == -EIO) {
            progress_error("%s: %s: %s", what, name, archive_error_string(a));
            return err;
        }
        if (err == -EDQUOT) {
            char why[256];
            limits_tree_cap_text(t, why, sizeof(why));
            progress_error("%s: %s: %s", what, name, why);
            return err;
        }
        if (err) {
            progress_error("%s: %s: %s%s", what, name, strerror(-err),
                           err == -ENOSPC ? " — free space in $TMPDIR (the "
                                            "spool) or point TMPDIR elsewhere"
                                          : "");
            return err;
        }
        n++;
    }
    progress("unpack: %s: %lu entries", what, n);
    return 0;
}

int layer_apply_file(struct tree *t, const char *path, const char *what)
{
    unsigned char head[16];
    ssize_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        got = pread(fd, head, sizeof(head), 0);
        close(fd);
    }
    struct archive *a = archive_read_new();
    if (!a)
        return -ENOMEM;
    int err = layer_support_filters(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    tree_next_layer(t);
    if (err) {
        progress_error("%s: setting up the decompressors: %s", path,
                       strerror(-err));
    } else if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        /* Opening reads the first block and recognizes the format there:
         * a compression left off fails here. */
        int program = 0;
        const char *refused =
            refused_compression(head, got > 0 ? (size_t)got : 0, &program);
        if (refused) {
            progress_error("%s: compressed with %s%s: refused (a layer is a "
                           "tar, " LAYER_COMPRESSIONS ")",
                           what ? what : path, refused,
                           program ? ", whose decompressor is an external "
                                     "program"
                                   : "");
            err = -ENOTSUP;
        } else {
            progress_error("%s: %s — is it a tar layer, " LAYER_COMPRESSIONS
                           "?",
                           path, archive_error_string(a));
            err = -EIO;
        }
    } else {
        err = layer_apply_archive(t, a, what ? what : path);
    }
    archive_read_free(a);
    return err;
}

int layer_apply_dir(struct tree *t, const char *dir)
{
    struct archive *a = archive_read_disk_new();
    struct archive_entry *e = archive_entry_new();
    struct archive_entry_linkresolver *lr = archive_entry_linkresolver_new();
    int err = 0;
    size_t dlen = strlen(dir);
    unsigned long n = 0;
    if (!a || !e || !lr) {
        err = -ENOMEM;
        goto out;
    }
    tree_next_layer(t);
    /* Physical walk: symlinks are entries, never followed out of DIR.
     * Extended attributes (file capabilities among them) and ACLs are not
     * even read: as from a tar layer, none reaches the guest. */
    archive_read_disk_set_symlink_physical(a);
    archive_read_disk_set_behavior(a, ARCHIVE_READDISK_NO_XATTR |
                                          ARCHIVE_READDISK_NO_ACL |
                                          ARCHIVE_READDISK_NO_FFLAGS);
    archive_entry_linkresolver_set_strategy(lr, ARCHIVE_FORMAT_TAR_USTAR);
    if (archive_read_disk_open(a, dir) != ARCHIVE_OK) {
        progress_error("%s: %s", dir, archive_error_string(a));
        err = -EIO;
        goto out;
    }
    for (;;) {
        archive_entry_clear(e);
        int r = archive_read_next_header2(a, e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            progress_error("%s: %s", dir, archive_error_string(a));
            err = -EIO;
            goto out;
        }
        archive_read_disk_descend(a);
        const char *full = archive_entry_pathname(e);
        if (!full || strncmp(full, dir, dlen) != 0)
            continue;
        /* The linkresolver turns the second and later names of a
         * multiply-linked file into hard-link entries. */
        struct archive_entry *sparse = NULL, *cur = e;
        if (archive_entry_filetype(e) == AE_IFREG &&
            archive_entry_nlink(e) > 1) {
            archive_entry_linkify(lr, &cur, &sparse);
        }
        const char *name = archive_entry_pathname(cur) + dlen;
        const char *link = archive_entry_hardlink(cur);
        enum tree_kind kind = entry_kind(cur);
        struct tree_input in = {
            .name = name,
            .kind = kind,
            .perm = archive_entry_perm(cur) & 07777,
            .uid = (uid_t)archive_entry_uid(cur),
            .gid = (gid_t)archive_entry_gid(cur),
            .target = kind == TK_HARDLINK  ? link + dlen
                      : kind == TK_SYMLINK ? archive_entry_symlink(cur)
                                           : NULL,
        };
        err = tree_apply(t, &in, kind == TK_FILE ? archive_data_read : NULL, a);
        if (err) {
            char why[256];
            if (err == -EDQUOT)
                limits_tree_cap_text(t, why, sizeof(why));
            else
                snprintf(why, sizeof(why), "%s", strerror(-err));
            progress_error("%s: %s", full, why);
            goto out;
        }
        n++;
    }
    progress("unpack: %s: %lu entries", dir, n);
out:
    if (lr)
        archive_entry_linkresolver_free(lr);
    if (e)
        archive_entry_free(e);
    if (a)
        archive_read_free(a);
    return err;
}
