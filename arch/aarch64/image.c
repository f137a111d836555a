#include "arch/aarch64/image.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int refuse(char *err, size_t err_len, int ret, const char *why)
{
    snprintf(err, err_len, "%s", why);
    return ret;
}

int arm64_image_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                      struct arm64_image *out, char *err, size_t err_len)
{
    if (head_len < 4 || file_size < 4)
        return refuse(err, err_len, -EINVAL,
                      "too short to be a kernel (an arm64 Image has a "
                      "64-byte header)");
    if (head[0] == 0x1f && head[1] == 0x8b)
        return refuse(err, err_len, -ENOEXEC,
                      "a gzip-compressed kernel (Image.gz, Debian's "
                      "vmlinuz): give the uncompressed arch/arm64/boot/Image");
    if (head_len >= 0x206 && memcmp(head + 0x202, "HdrS", 4) == 0)
        return refuse(err, err_len, -ENOEXEC,
                      "an x86 bzImage, not an arm64 Image");
    if (head_len < ARM64_IMAGE_HEAD_LEN || file_size < ARM64_IMAGE_HEAD_LEN)
        return refuse(err, err_len, -EINVAL,
                      "too short to be a kernel (an arm64 Image has a "
                      "64-byte header)");
    if (le32(head + 56) != ARM64_IMAGE_MAGIC)
        return refuse(err, err_len, -ENOEXEC,
                      "not an arm64 Image (no \"ARM\\x64\" magic at offset "
                      "56)");
    uint64_t text_offset = le64(head + 8);
    uint64_t image_size = le64(head + 16);
    uint64_t flags = le64(head + 24);
    if (image_size == 0)
        return refuse(err, err_len, -ENOEXEC,
                      "an Image without image_size (Linux before 3.17): "
                      "too old");
    if (flags & 1)
        return refuse(err, err_len, -ENOEXEC, "a big-endian kernel");
    if (flags >> 4)
        return refuse(err, err_len, -ENOEXEC,
                      "header flags this loader does not know (bits 4-63)");
    if (text_offset >= ARM64_IMAGE_ALIGN || text_offset % 4096)
        return refuse(err, err_len, -EINVAL,
                      "text_offset not page-aligned below 2 MiB");
    if (file_size > ARM64_IMAGE_MAX || image_size > ARM64_IMAGE_MAX)
        return refuse(err, err_len, -EINVAL,
                      "larger than 256 MiB: not a kernel runvm boots");
    if (image_size < file_size)
        return refuse(err, err_len, -EINVAL,
                      "image_size is smaller than the file: truncated or "
                      "not an Image");
    static const unsigned int page_kib[] = {0, 4, 16, 64};
    *out = (struct arm64_image){.text_offset = text_offset,
                                .image_size = image_size,
                                .page_kib = page_kib[(flags >> 1) & 3],
                                .anywhere = (flags >> 3) & 1};
    return 0;
}

int arm64_image_place(const struct arm64_image *img, uint64_t ram_base,
                      uint64_t ram_size, uint64_t *addr)
{
    if (ram_base > UINT64_MAX - ARM64_IMAGE_ALIGN ||
        ram_size > UINT64_MAX - ram_base)
        return -ENOSPC;
    uint64_t base =
        (ram_base + ARM64_IMAGE_ALIGN - 1) & ~(ARM64_IMAGE_ALIGN - 1);
    uint64_t end = ram_base + ram_size;
    if (base > end || img->text_offset > end - base ||
        img->image_size > end - base - img->text_offset)
        return -ENOSPC;
    *addr = base + img->text_offset;
    return 0;
}
