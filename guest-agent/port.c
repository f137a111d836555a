#include "guest-agent/port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Reads a small sysfs attribute without its trailing newline. Length or
 * -errno. */
static int read_attr(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
        n--;
    buf[n] = '\0';
    return (int)n;
}

/* DIR/ENTRY/ATTR into out; false when it does not fit. */
static bool attr_path(char *out, size_t len, const char *dir, const char *entry,
                      const char *attr)
{
    int n = snprintf(out, len, "%s/%s/%s", dir, entry, attr);
    return n > 0 && (size_t)n < len;
}

int port_find(const char *sysfs, const char *name, char *out, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/class/virtio-ports", sysfs);
    DIR *d = opendir(dir);
    if (!d)
        return -ENOENT;
    int ret = -ENOENT;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX], got[256];
        /* A port gets its name file only once the host names it. */
        if (!attr_path(path, sizeof(path), dir, e->d_name, "name") ||
            read_attr(path, got, sizeof(got)) < 0 || strcmp(got, name))
            continue;
        int n = snprintf(out, len, "/dev/%s", e->d_name);
        ret = n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
        break;
    }
    closedir(d);
    return ret;
}

bool port_multiport_present(const char *sysfs)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/bus/virtio/devices", sysfs);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX], id[32], features[128];
        if (!attr_path(path, sizeof(path), dir, e->d_name, "device") ||
            read_attr(path, id, sizeof(id)) < 0 || strcmp(id, "0x0003"))
            continue;
        /* "features": one '0' or '1' per bit, bit 0 first; bit 1 is
         * VIRTIO_CONSOLE_F_MULTIPORT. */
        found = attr_path(path, sizeof(path), dir, e->d_name, "features") &&
                read_attr(path, features, sizeof(features)) > 1 &&
                features[1] == '1';
    }
    closedir(d);
    return found;
}

int port_wait(const char *sysfs, const char *name, int timeout_ms, char *out,
              size_t len)
{
    const int step_ms = 5;
    for (int waited = 0;; waited += step_ms) {
        int ret = port_find(sysfs, name, out, len);
        if (ret != -ENOENT)
            return ret;
        if (!port_multiport_present(sysfs))
            return -ENOENT;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        struct timespec ts = {0, step_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}
