/* Layer application: libarchive entries → tree_apply(). */
#include "initramfs-builder/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"

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
            progress_error("%s: %s — is it a (compressed) tar layer?", what,
                           archive_error_string(a));
            return -EIO;
        }
        const char *name = archive_entry_pathname(e);
        if (!name)
            continue;
        enum tree_kind kind = entry_kind(e);
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
    struct archive *a = archive_read_new();
    if (!a)
        return -ENOMEM;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    int err = 0;
    tree_next_layer(t);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        progress_error("%s: %s", path, archive_error_string(a));
        err = -EIO;
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
    /* Physical walk: symlinks are entries, never followed out of DIR. */
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
