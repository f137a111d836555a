/* How the command line writes the guest's output to its own stdout and
 * stderr: all of it, blocking, so that a slow reader slows the guest down
 * instead of losing its output; a reader that is gone drops it. */
#ifndef RUNVM_WRITE_H
#define RUNVM_WRITE_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* Writes p[0..n) to fd, retrying short writes and EINTR; gives up
 * silently when fd is closed or fails. */
static inline void cli_write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

#endif
