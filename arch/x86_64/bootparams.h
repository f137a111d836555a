/* The zero page (struct boot_params) and e820 map handed to a 64-bit Linux
 * kernel (Documentation/x86/boot.rst and zero-page.rst). Pure. */
#ifndef RUNVM_BOOTPARAMS_H
#define RUNVM_BOOTPARAMS_H

#include <stdint.h>

#include <asm/bootparam.h>

#include "arch/x86_64/bzimage.h"
#include "core/guest_mem.h"

/* e820 type codes (ACPI address range types). */
#define E820_TYPE_RAM      1
#define E820_TYPE_RESERVED 2

/* Writes the guest's memory map into tab (at most max entries) and returns
 * the number written: base RAM below the EBDA, the EBDA/ROM area reserved,
 * RAM from 1 MiB to the MMIO hole, and RAM above 4 GiB. */
unsigned int bootparams_e820(const struct guest_mem *mem,
                             struct boot_e820_entry *tab, unsigned int max);

/* Chooses where the initramfs goes: the highest page-aligned address such
 * that it ends inside low RAM and at or below bz->initrd_addr_max, and starts
 * at or above bz->mem_end. 0 and *addr, or -E2BIG if it cannot fit. */
int bootparams_initrd_addr(const struct bzimage *bz,
                           const struct guest_mem *mem, uint64_t size,
                           uint64_t *addr) __attribute__((warn_unused_result));

/* Fills *zp from scratch: the image's setup header, loader type, command
 * line pointer, initramfs location and e820 map. */
void bootparams_build(struct boot_params *zp, const struct bzimage *bz,
                      const struct guest_mem *mem, uint64_t cmdline_addr,
                      uint64_t initrd_addr, uint64_t initrd_size);

#endif
