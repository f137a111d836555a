/* Linux x86 boot protocol (Documentation/x86/boot.rst): validation of a
 * bzImage's setup header. Pure: works on bytes already read. */
#ifndef RUNVM_BZIMAGE_H
#define RUNVM_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <asm/bootparam.h>

/* Oldest boot protocol accepted: 2.06 gives cmdline_size. */
#define BZIMAGE_MIN_VERSION 0x0206
/* The 64-bit entry point (startup_64) sits this far into the protected-mode
 * kernel (boot.rst, "64-bit Boot Protocol"). */
#define BZIMAGE_ENTRY64_OFFSET 0x200
/* Bytes of the file bzimage_parse needs to see: the header ends at
 * 0x202 + (byte at 0x201) <= 0x301. */
#define BZIMAGE_HEAD_LEN 0x400
/* A protected-mode kernel larger than this is not a kernel we built. */
#define BZIMAGE_MAX_KERNEL (256ULL << 20)

struct bzimage {
    /* The image's setup header, bytes past its declared end zeroed. */
    struct setup_header hdr;
    uint16_t version;       /* boot protocol, e.g. 0x020f */
    uint64_t kernel_offset; /* file offset of the protected-mode code */
    uint64_t kernel_size;   /* its size in bytes */
    uint64_t load_addr;     /* guest address it is loaded at */
    uint64_t entry64;       /* guest address of the 64-bit entry */
    /* First guest address not needed by the kernel while it decompresses
     * and boots (load address or preferred address + init_size). The
     * initramfs must start at or above it. */
    uint64_t mem_end;
    uint64_t initrd_addr_max; /* last byte the initramfs may occupy */
    uint32_t cmdline_max;     /* longest command line, without its NUL */
};

/* Validates a bzImage from its first head_len bytes (at least
 * BZIMAGE_HEAD_LEN, or the whole file if shorter) and its total size, to be
 * loaded at load_addr. 0 and *out filled, or -ENOEXEC (not a bzImage or
 * unsupported) / -EINVAL (truncated or inconsistent) with a one-line reason
 * in err. */
int bzimage_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                  uint64_t load_addr, struct bzimage *out, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

#endif
