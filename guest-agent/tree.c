#include "guest-agent/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* Removes what it can of the directory open at fd. Returns 0 once the
 * directory is empty, 1 with *child open on a subdirectory that must be
 * emptied first (on the same file system, dev), or -errno. */
static int empty_level(int fd, dev_t dev, int *child)
{
    /* A new open file description, so the listing starts at the top each
     * time the walk comes back to this directory. */
    int lfd = openat(fd, ".", DIR_FLAGS);
    if (lfd < 0)
        return -errno;
    DIR *d = fdopendir(lfd);
    if (!d) {
        int err = -errno;
        close(lfd);
        return err;
    }
    int r = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
            continue;
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                    continue;
                r = -errno;
                break;
            }
            is_dir = S_ISDIR(st.st_mode);
        }
        if (!is_dir) {
            if (unlinkat(fd, n, 0) == 0 || errno == ENOENT)
                continue;
            if (errno != EISDIR) {
                r = -errno;
                break;
            }
        }
        if (unlinkat(fd, n, AT_REMOVEDIR) == 0 || errno == ENOENT)
            continue;
        if (errno != ENOTEMPTY && errno != EEXIST) {
            r = -errno;
            break;
        }
        int c = openat(fd, n, DIR_FLAGS);
        struct stat st;
        if (c < 0 || fstat(c, &st) < 0) {
            r = -errno;
            if (c >= 0)
                close(c);
            break;
        }
        if (st.st_dev != dev) {
            /* A mount inside: not ours to empty. */
            close(c);
            r = -EXDEV;
            break;
        }
        *child = c;
        r = 1;
        break;
    }
    if (!de && errno && r == 0)
        r = -errno;
    closedir(d);
    return r;
}

/* Empties the directory open at root (the fd stays the caller's). Goes
 * down into the first non-empty subdirectory, empties it, comes back up
 * through ".." and starts that level's listing over, which now begins
 * with the emptied directory, removed then. */
static int empty_fd(int root)
{
    struct stat top, st;
    if (fstat(root, &top) < 0)
        return -errno;
    int fd = openat(root, ".", DIR_FLAGS);
    if (fd < 0)
        return -errno;
    unsigned long depth = 0;
    int r;
    for (;;) {
        int child = -1;
        r = empty_level(fd, top.st_dev, &child);
        if (r == 1) {
            close(fd);
            fd = child;
            depth++;
            continue;
        }
        if (r < 0 || depth == 0)
            break;
        int up = openat(fd, "..", DIR_FLAGS);
        if (up < 0 || fstat(up, &st) < 0) {
            r = -errno;
            if (up >= 0)
                close(up);
            break;
        }
        close(fd);
        fd = up;
        depth--;
        /* Nothing of the step runs now, so ".." is where we came from; if
         * a directory moved under us anyway, stop rather than empty the
         * wrong one. */
        if (st.st_dev != top.st_dev ||
            (depth == 0 && st.st_ino != top.st_ino)) {
            r = -ESTALE;
            break;
        }
    }
    close(fd);
    return r;
}

int tree_empty(const char *path)
{
    int fd = open(path, DIR_FLAGS);
    if (fd < 0)
        return -errno;
    int r = empty_fd(fd);
    close(fd);
    return r;
}

int tree_remove(const char *path)
{
    int r = tree_empty(path);
    if (r < 0)
        return r;
    return rmdir(path) < 0 ? -errno : 0;
}
