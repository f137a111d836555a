/* Where guest RAM goes on x86-64: from address 0 up to the MMIO hole below
 * 4 GiB, and the rest above 4 GiB (as QEMU and Firecracker lay it out). */
#include "arch/arch.h"

#include <errno.h>

#include "arch/x86_64/layout.h"

int arch_ram_layout(uint64_t ram_size, struct gm_region *out, unsigned int *n)
{
    if (ram_size == 0 || ram_size % (4 * KiB) != 0)
        return -EINVAL;
    uint64_t low =
        ram_size < LAYOUT_MMIO_HOLE_START ? ram_size : LAYOUT_MMIO_HOLE_START;
    out[0] = (struct gm_region){.gpa = 0, .size = low};
    *n = 1;
    if (ram_size > low) {
        out[1] = (struct gm_region){.gpa = LAYOUT_MMIO_HOLE_END,
                                    .size = ram_size - low};
        *n = 2;
    }
    return 0;
}

uint64_t x86_low_ram(const struct guest_mem *mem)
{
    return mem->nr_regions ? mem->regions[0].size : 0;
}
