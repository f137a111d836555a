/* libFuzzer target: bzimage_parse must refuse or accept any bytes without
 * reading past them, and what it accepts must be self-consistent. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "arch/x86_64/bzimage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bzimage bz;
    char err[256];
    size_t head = size < BZIMAGE_HEAD_LEN ? size : BZIMAGE_HEAD_LEN;
    if (bzimage_parse(data, head, size, 0x100000, &bz, err, sizeof(err)) == 0) {
        if (bz.kernel_offset + bz.kernel_size != size || bz.kernel_size == 0 ||
            bz.mem_end < bz.load_addr + bz.kernel_size)
            abort();
    }
    return 0;
}
