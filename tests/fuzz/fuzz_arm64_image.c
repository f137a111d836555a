/* libFuzzer target: arm64_image_parse must refuse or accept any bytes
 * without reading past them; what it accepts must be self-consistent, and
 * arm64_image_place must keep it inside the RAM it is given. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "arch/aarch64/image.h"
#include "arch/aarch64/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arm64_image img;
    char err[256];
    size_t head = size < 0x400 ? size : 0x400;
    if (arm64_image_parse(data, head, size, &img, err, sizeof(err)) != 0)
        return 0;
    if (img.text_offset >= ARM64_IMAGE_ALIGN || img.image_size < size ||
        img.image_size > ARM64_IMAGE_MAX)
        abort();
    /* The RAM's base and size from the input's first bytes. */
    uint64_t base = ARM64_RAM_BASE + (size > 0 ? data[0] : 0) * 4096ull;
    uint64_t ram = (size > 1 ? data[1] : 0) * ARM64_MiB;
    uint64_t at;
    if (arm64_image_place(&img, base, ram, &at) == 0 &&
        (at < base || at % 4096 || at - img.text_offset < base ||
         (at - img.text_offset) % ARM64_IMAGE_ALIGN ||
         at + img.image_size > base + ram))
        abort();
    return 0;
}
