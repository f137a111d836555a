/* The guest agent's work directory: one per RUN (or kept for the next with
 * REUSE_WORKDIR), made, removed and filled with the request's files; a new
 * one comes with an empty tmp root. */
#include "guest-agent/agent_int.h"

#include "guest-agent/tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How many fresh temporary names a file write tries before giving up. */
#define TEMP_NAME_TRIES 16

int workdir_remove(struct agent *a)
{
    if (!a->workdir[0])
        return 0;
    int r = tree_remove(a->workdir);
    if (r < 0 && r != -ENOENT) {
        /* Kept, so that the next fresh RUN tries again rather than leave
         * it for the next submission to read. */
        agent_log("removing %s: %s", a->workdir, strerror(-r));
        return r;
    }
    a->workdir[0] = '\0';
    return 0;
}

int workdir_make(struct agent *a)
{
    /* What the last submission left must not be there for the next to
     * read: its directory is gone, and so is all it put in the tmp root. */
    int r = workdir_remove(a);
    if (r < 0)
        return r;
    if (a->cfg.tmp_root) {
        r = tree_empty(a->cfg.tmp_root);
        if (r < 0) {
            agent_log("emptying %s: %s", a->cfg.tmp_root, strerror(-r));
            return r;
        }
    }
    snprintf(a->workdir, sizeof(a->workdir), "%s/run%u", a->cfg.work_root,
             ++a->seq);
    if (mkdir(a->workdir, 0755) < 0) {
        int e = -errno;
        a->workdir[0] = '\0';
        return e;
    }
    if (a->cfg.switch_user && chown(a->workdir, a->cfg.uid, a->cfg.gid) < 0) {
        int e = -errno;
        (void)workdir_remove(a);
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

/* The name a file is written under before it takes its own: hidden, and
 * new each time (a counter and the clock), so a name the snippet made
 * beforehand is only a retry of O_EXCL. */
static void temp_name(struct agent *a, char *out, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(out, len, ".runvm-agent.%u.%lx.tmp", ++a->file_seq,
             (unsigned long)ts.tv_nsec);
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    return 0;
}

/* Writes one request file into the work directory. The directory is the
 * snippet's: an earlier step of a REUSE_WORKDIR run may have left a FIFO
 * (open would block PID 1 for good), a symlink or a hard link (the write
 * would land elsewhere) or a directory under the name. So the data goes to
 * a fresh file that only this call can have made (O_CREAT | O_EXCL, which
 * never follows a link or opens what exists), and rename() then puts it in
 * place of whatever held the name, atomically; a directory there makes
 * rename fail with EISDIR, which the host is told. Everything is relative
 * to the directory's fd, so nothing is looked up by path twice. */
int workdir_write_file(struct agent *a, const struct msg_file *f)
{
    char name[NAME_MAX + 1], temp[64];
    memcpy(name, f->name.p, f->name.len);
    name[f->name.len] = '\0';
    mode_t mode = f->mode ? (f->mode & 0777) : 0644;
    int err = 0, fd = -1;

    int dfd = open(a->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    for (int i = 0; i < TEMP_NAME_TRIES && fd < 0; i++) {
        temp_name(a, temp, sizeof(temp));
        fd = openat(dfd, temp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        err = -errno;
        close(dfd);
        return err;
    }
    err = write_all(fd, f->data.p, f->data.len);
    if (!err && fchmod(fd, mode) < 0)
        err = -errno;
    if (!err && a->cfg.switch_user && fchown(fd, a->cfg.uid, a->cfg.gid) < 0)
        err = -errno;
    if (close(fd) < 0 && !err)
        err = -errno;
    if (!err && renameat(dfd, temp, dfd, name) < 0)
        err = -errno;
    if (err)
        unlinkat(dfd, temp, 0);
    close(dfd);
    return err;
}
