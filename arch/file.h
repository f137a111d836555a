/* File reading shared by the arches' loaders. */
#ifndef RUNVM_ARCH_FILE_H
#define RUNVM_ARCH_FILE_H

#include <stdint.h>

/* Reads exactly len bytes at offset into dst. 0 or -errno (-EIO if the
 * file is shorter than it was when it was measured). */
int arch_pread_full(int fd, void *dst, uint64_t len, uint64_t offset)
    __attribute__((warn_unused_result));

#endif
