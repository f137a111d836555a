/* The guest agent's work directory: one per RUN (or kept for the next with
 * REUSE_WORKDIR), made, removed and filled with the request's files. */
#include "guest-agent/agent_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_entry(const char *path, const struct stat *st, int type,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void workdir_remove(struct agent *a)
{
    if (a->workdir[0])
        nftw(a->workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    a->workdir[0] = '\0';
}

int workdir_make(struct agent *a)
{
    workdir_remove(a);
    snprintf(a->workdir, sizeof(a->workdir), "%s/run%u", a->cfg.work_root,
             ++a->seq);
    if (mkdir(a->workdir, 0755) < 0 && errno != EEXIST) {
        int e = -errno;
        a->workdir[0] = '\0';
        return e;
    }
    if (a->cfg.switch_user && chown(a->workdir, a->cfg.uid, a->cfg.gid) < 0) {
        int e = -errno;
        workdir_remove(a);
        return e;
    }
    return 0;
}

bool workdir_valid_name(struct msg_bytes n)
{
    if (n.len == 0 || n.len > NAME_MAX)
        return false;
    if (memchr(n.p, '/', n.len) || memchr(n.p, '\0', n.len))
        return false;
    if ((n.len == 1 && n.p[0] == '.') ||
        (n.len == 2 && n.p[0] == '.' && n.p[1] == '.'))
        return false;
    return true;
}

/* Writes one request file into the work directory. Names are plain names
 * (checked), O_NOFOLLOW keeps a symlink left by an earlier step from
 * redirecting the write. */
int workdir_write_file(struct agent *a, const struct msg_file *f)
{
    char name[NAME_MAX + 1];
    memcpy(name, f->name.p, f->name.len);
    name[f->name.len] = '\0';
    mode_t mode = f->mode ? (f->mode & 0777) : 0644;

    int dfd = open(a->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int fd = openat(
        dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    int err = fd < 0 ? -errno : 0;
    close(dfd);
    if (fd < 0)
        return err;
    size_t off = 0;
    while (off < f->data.len) {
        ssize_t n = write(fd, f->data.p + off, f->data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (!err && fchmod(fd, mode) < 0)
        err = -errno;
    if (!err && a->cfg.switch_user && fchown(fd, a->cfg.uid, a->cfg.gid) < 0)
        err = -errno;
    close(fd);
    return err;
}
