/* The arm64 kernel Image (Documentation/arm64/booting.rst, "Call the
 * kernel image"): validation of its 64-byte header. Pure: works on bytes
 * already read, so any host tests and fuzzes it. */
#ifndef RUNVM_ARM64_IMAGE_H
#define RUNVM_ARM64_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARM64_IMAGE_HEAD_LEN 64
#define ARM64_IMAGE_MAGIC    0x644d5241u /* "ARM\x64", at offset 56 */
/* The kernel is placed text_offset above a 2 MiB-aligned address. */
#define ARM64_IMAGE_ALIGN (2ULL << 20)
/* An Image larger than this is not a kernel we built. */
#define ARM64_IMAGE_MAX (256ULL << 20)

struct arm64_image {
    uint64_t text_offset; /* from the 2 MiB-aligned base */
    /* Bytes from the load address the kernel uses, its BSS and early page
     * tables included: nothing else may be placed there. */
    uint64_t image_size;
    unsigned int page_kib; /* the kernel's page size; 0: not given */
    bool anywhere;         /* may sit anywhere in RAM, not only low */
};

/* Validates an Image from its first head_len bytes (at least
 * ARM64_IMAGE_HEAD_LEN) and the file's size. 0 and *out filled, or
 * -ENOEXEC (not an arm64 Image: a compressed one, an x86 bzImage, a
 * big-endian kernel, one older than Linux 3.17) / -EINVAL (truncated or
 * inconsistent) with a one-line reason in err. */
int arm64_image_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                      struct arm64_image *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Where the kernel goes in RAM [ram_base, ram_base + ram_size): text_offset
 * above the first 2 MiB-aligned address at or above ram_base. 0 and *addr,
 * or -ENOSPC where image_size does not fit. */
int arm64_image_place(const struct arm64_image *img, uint64_t ram_base,
                      uint64_t ram_size, uint64_t *addr)
    __attribute__((warn_unused_result));

#endif
