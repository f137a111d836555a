/* cpio newc writer. The format is a 110-byte ASCII header ("070701" and
 * thirteen 8-digit hex fields), the NUL-terminated name, padding to 4
 * bytes, the data, padding to 4 bytes; a "TRAILER!!!" entry ends it. It is
 * written here rather than through libarchive so inode numbers, link counts
 * and the hard-link data placement are ours to fix, which is what makes two
 * builds byte-identical. */
#include "initramfs-builder/cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "initramfs-builder/progress.h"

extern char **environ;

struct sink {
    int fd;      /* the output file */
    int pipe_fd; /* lz4: its stdin */
    pid_t pid;
    enum cpio_compress compress;
    z_stream z;
    int z_live;
    uint64_t raw;
    unsigned char zbuf[1 << 16];
};

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int deflate_out(struct sink *s, int flush)
{
    int r;
    do {
        s->z.next_out = s->zbuf;
        s->z.avail_out = sizeof(s->zbuf);
        r = deflate(&s->z, flush);
        if (r == Z_STREAM_ERROR)
            return -EIO;
        int err = write_all(s->fd, s->zbuf, sizeof(s->zbuf) - s->z.avail_out);
        if (err)
            return err;
    } while (s->z.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
    return 0;
}

static int sink_write(struct sink *s, const void *buf, size_t len)
{
    s->raw += len;
    switch (s->compress) {
    case CPIO_NONE: return write_all(s->fd, buf, len);
    case CPIO_LZ4: return write_all(s->pipe_fd, buf, len);
    case CPIO_GZIP:
        /* zlib takes uInt lengths; callers pass at most 64 KiB. */
        s->z.next_in = (Bytef *)(uintptr_t)buf;
        s->z.avail_in = (uInt)len;
        return deflate_out(s, Z_NO_FLUSH);
    }
    return -EINVAL;
}

static int sink_open(struct sink *s, int fd, enum cpio_compress c)
{
    memset(s, 0, offsetof(struct sink, zbuf));
    s->fd = fd;
    s->pipe_fd = -1;
    s->compress = c;
    if (c == CPIO_GZIP) {
        /* windowBits 15+16: a gzip wrapper with mtime 0 and no name, so
         * the bytes depend on the input only. Level 6: -9 took 4x as long
         * on a Go image for about 1% less. */
        if (deflateInit2(&s->z, 6, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        s->z_live = 1;
    } else if (c == CPIO_LZ4) {
        /* The kernel reads only lz4's legacy frame format ("lz4 -l"); no
         * liblz4 headers here, so the lz4 tool does the compression. */
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return -errno;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], 0);
        posix_spawn_file_actions_adddup2(&fa, fd, 1);
        static char a0[] = "lz4", a1[] = "-l", a2[] = "-9", a3[] = "-q",
                    a4[] = "-c";
        char *argv[] = {a0, a1, a2, a3, a4, NULL};
        int r = posix_spawnp(&s->pid, "lz4", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        if (r) {
            close(p[1]);
            progress_error("lz4: %s — install the lz4 package", strerror(r));
            return -r;
        }
        s->pipe_fd = p[1];
    }
    return 0;
}

/* Finishes the stream; returns 0 or -errno. Always releases resources. */
static int sink_close(struct sink *s, int err)
{
    if (s->z_live) {
        if (!err)
            err = deflate_out(s, Z_FINISH);
        deflateEnd(&s->z);
        s->z_live = 0;
    }
    if (s->pipe_fd >= 0) {
        close(s->pipe_fd);
        s->pipe_fd = -1;
        int status;
        if (err)
            kill(s->pid, SIGTERM);
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            progress_error("lz4 failed (status %d)", status);
            err = -EIO;
        }
    }
    return err;
}

static int put_header(struct sink *s, const char *name, uint32_t ino,
                      uint32_t mode, uint32_t uid, uint32_t gid, uint32_t nlink,
                      uint32_t size)
{
    static const char zeros[4];
    char hdr[111];
    size_t namesize = strlen(name) + 1;
    snprintf(hdr, sizeof(hdr),
             "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino,
             mode, uid, gid, nlink, 0u /* mtime */, size, 0u, 0u, 0u, 0u,
             (unsigned)namesize, 0u /* check */);
    int err = sink_write(s, hdr, 110);
    if (!err)
        err = sink_write(s, name, namesize);
    if (!err)
        err = sink_write(s, zeros, (4 - (110 + namesize) % 4) % 4);
    return err;
}

static int put_data(struct sink *s, const struct tree *t,
                    const struct tree_entry *e)
{
    static const char zeros[4];
    char buf[1 << 16];
    uint64_t size = e->content->size;
    for (uint64_t off = 0; off < size;) {
        size_t n =
            size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        int err = tree_read_content(t, e->content, off, buf, n);
        if (!err)
            err = sink_write(s, buf, n);
        if (err)
            return err;
        off += n;
    }
    return sink_write(s, zeros, (4 - size % 4) % 4);
}

static int write_entries(struct sink *s, struct tree *t, struct tree_entry **v,
                         size_t n, uint64_t *count)
{
    static const char zeros[4];
    uint32_t next_ino = 1;
    int err = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i]->content)
            v[i]->content->ino = 0, v[i]->content->emitted = 0;
    for (size_t i = 0; i < n && !err; i++) {
        struct tree_entry *e = v[i];
        if (!e->path[0])
            continue; /* the root exists before unpacking */
        uint32_t ino, nlink = 1, size = 0;
        int with_data = 0;
        if (S_ISREG(e->mode)) {
            struct tree_content *c = e->content;
            if (c->size > UINT32_MAX) {
                progress_error("/%s: %llu bytes is more than cpio newc "
                               "holds (4 GiB) — drop it from the image",
                               e->path, (unsigned long long)c->size);
                return -EFBIG;
            }
            if (!c->ino)
                c->ino = next_ino++;
            ino = c->ino;
            nlink = c->refs;
            with_data = ++c->emitted == c->refs;
            size = with_data ? (uint32_t)c->size : 0;
        } else {
            ino = next_ino++;
            if (S_ISDIR(e->mode))
                nlink = 2;
            if (S_ISLNK(e->mode))
                size = (uint32_t)strlen(e->symlink);
        }
        err = put_header(s, e->path, ino, (uint32_t)e->mode, (uint32_t)e->uid,
                         (uint32_t)e->gid, nlink, size);
        if (!err && with_data)
            err = put_data(s, t, e);
        if (!err && S_ISLNK(e->mode)) {
            err = sink_write(s, e->symlink, size);
            if (!err)
                err = sink_write(s, zeros, (4 - size % 4) % 4);
        }
        (*count)++;
    }
    if (!err)
        err = put_header(s, "TRAILER!!!", 0, 0, 0, 0, 1, 0);
    return err;
}

int cpio_parse_compress(const char *s, enum cpio_compress *out)
{
    if (strcmp(s, "none") == 0)
        *out = CPIO_NONE;
    else if (strcmp(s, "gzip") == 0 || strcmp(s, "gz") == 0)
        *out = CPIO_GZIP;
    else if (strcmp(s, "lz4") == 0)
        *out = CPIO_LZ4;
    else
        return -EINVAL;
    return 0;
}

int cpio_write_tree(struct tree *t, const char *path,
                    enum cpio_compress compress, struct cpio_stats *stats)
{
    char tmp[4096];
    struct sink *s = NULL;
    size_t n;
    int err;
    struct tree_entry **v = tree_sorted(t, &n);
    if (!v)
        return -ENOMEM;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        free(v);
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = -errno;
        progress_error("%s: %s", tmp, strerror(errno));
        free(v);
        return err;
    }
    memset(stats, 0, sizeof(*stats));
    s = malloc(sizeof(*s));
    err = s ? sink_open(s, fd, compress) : -ENOMEM;
    if (!err) {
        err = write_entries(s, t, v, n, &stats->entries);
        stats->raw_bytes = s->raw;
        err = sink_close(s, err);
    }
    if (!err && fsync(fd) < 0)
        err = -errno;
    struct stat st;
    if (!err && fstat(fd, &st) == 0)
        stats->compressed_bytes = (uint64_t)st.st_size;
    if (close(fd) < 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err) {
        progress_error("writing %s: %s%s", path, strerror(-err),
                       err == -ENOSPC ? " — free some space or write the "
                                        "image elsewhere (-o)"
                                      : "");
        unlink(tmp);
    }
    free(s);
    free(v);
    return err;
}
