#include "arch/x86_64/bootparams.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/arch_x86.h"
#include "arch/x86_64/layout.h"

#define PAGE_SIZE 4096ULL
/* boot.rst: type_of_loader 0xff means "undefined" boot loader. */
#define LOADER_TYPE_UNDEFINED 0xff

static unsigned int e820_add(struct boot_e820_entry *tab, unsigned int n,
                             unsigned int max, uint64_t addr, uint64_t size,
                             uint32_t type)
{
    if (n >= max || size == 0)
        return n;
    tab[n] = (struct boot_e820_entry){.addr = addr, .size = size, .type = type};
    return n + 1;
}

unsigned int bootparams_e820(const struct guest_mem *mem,
                             struct boot_e820_entry *tab, unsigned int max)
{
    uint64_t low = x86_low_ram(mem);
    unsigned int n = 0;
    /* The last KiB of base memory holds the MP table; keep the kernel off
     * it and off the legacy VGA/ROM area, as a PC BIOS would. */
    uint64_t base_end = low < LAYOUT_EBDA_START ? low : LAYOUT_EBDA_START;
    n = e820_add(tab, n, max, 0, base_end, E820_TYPE_RAM);
    n = e820_add(tab, n, max, LAYOUT_EBDA_START,
                 LAYOUT_HIGH_RAM_START - LAYOUT_EBDA_START, E820_TYPE_RESERVED);
    if (low > LAYOUT_HIGH_RAM_START)
        n = e820_add(tab, n, max, LAYOUT_HIGH_RAM_START,
                     low - LAYOUT_HIGH_RAM_START, E820_TYPE_RAM);
    for (unsigned int i = 1; i < mem->nr_regions; i++)
        n = e820_add(tab, n, max, mem->regions[i].gpa, mem->regions[i].size,
                     E820_TYPE_RAM);
    return n;
}

int bootparams_initrd_addr(const struct bzimage *bz,
                           const struct guest_mem *mem, uint64_t size,
                           uint64_t *addr)
{
    uint64_t top = x86_low_ram(mem); /* exclusive */
    /* initrd_addr_max is the last byte it may use (inclusive). */
    if (bz->initrd_addr_max < UINT64_MAX && bz->initrd_addr_max + 1 < top)
        top = bz->initrd_addr_max + 1;
    if (size > top)
        return -E2BIG;
    uint64_t start = (top - size) & ~(PAGE_SIZE - 1);
    if (start < bz->mem_end)
        return -E2BIG;
    *addr = start;
    return 0;
}

void bootparams_build(struct boot_params *zp, const struct bzimage *bz,
                      const struct guest_mem *mem, uint64_t cmdline_addr,
                      uint64_t initrd_addr, uint64_t initrd_size)
{
    memset(zp, 0, sizeof(*zp));
    zp->hdr = bz->hdr;
    zp->hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    /* Only LOADED_HIGH matters for a 64-bit entry; drop the bits that
     * describe a real-mode setup (CAN_USE_HEAP) or silence the kernel. */
    zp->hdr.loadflags = LOADED_HIGH;
    zp->hdr.cmd_line_ptr = (uint32_t)cmdline_addr;
    zp->ext_cmd_line_ptr = (uint32_t)(cmdline_addr >> 32);
    zp->hdr.ramdisk_image = (uint32_t)initrd_addr;
    zp->hdr.ramdisk_size = (uint32_t)initrd_size;
    zp->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
    zp->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
    zp->e820_entries = (uint8_t)bootparams_e820(mem, zp->e820_table,
                                                E820_MAX_ENTRIES_ZEROPAGE);
}
