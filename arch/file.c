#include "arch/file.h"

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

int arch_pread_full(int fd, void *dst, uint64_t len, uint64_t offset)
{
    uint8_t *p = dst;
    while (len > 0) {
        size_t chunk = len > (1U << 30) ? (1U << 30) : (size_t)len;
        ssize_t n = pread(fd, p, chunk, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        offset += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}
