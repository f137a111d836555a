#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/layout.h"

/* The x86-64 RAM layout for ram_size, described (not mapped) in mem. */
static int x86_layout(struct guest_mem *mem, uint64_t ram_size)
{
    struct gm_region r[GM_MAX_REGIONS];
    unsigned int n;
    int ret = arch_ram_layout(ram_size, r, &n);
    return ret < 0 ? ret : gm_describe(mem, r, n);
}

static struct bzimage test_kernel(void)
{
    struct bzimage bz;
    memset(&bz, 0, sizeof(bz));
    bz.hdr.boot_flag = 0xaa55;
    bz.hdr.header = 0x53726448;
    bz.hdr.version = 0x020f;
    bz.hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP;
    bz.hdr.setup_sects = 27;
    bz.version = 0x020f;
    bz.load_addr = LAYOUT_KERNEL_ADDR;
    bz.mem_end = 48 * MiB;
    bz.initrd_addr_max = 0x7fffffff;
    bz.cmdline_max = 2047;
    return bz;
}

static void e820_256mib(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(x86_layout(&mem, 256 * MiB), 0);
    struct boot_e820_entry tab[8];
    unsigned int n = bootparams_e820(&mem, tab, 8);
    assert_int_equal(n, 3);
    assert_int_equal(tab[0].addr, 0);
    assert_int_equal(tab[0].size, LAYOUT_EBDA_START);
    assert_int_equal(tab[0].type, E820_TYPE_RAM);
    assert_int_equal(tab[1].addr, LAYOUT_EBDA_START);
    assert_int_equal(tab[1].addr + tab[1].size, 1 * MiB);
    assert_int_equal(tab[1].type, E820_TYPE_RESERVED);
    assert_int_equal(tab[2].addr, 1 * MiB);
    assert_int_equal(tab[2].addr + tab[2].size, 256 * MiB);
    assert_int_equal(tab[2].type, E820_TYPE_RAM);
}

static void e820_3584mib_skips_the_hole(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(x86_layout(&mem, 3584 * MiB), 0);
    struct boot_e820_entry tab[8];
    unsigned int n = bootparams_e820(&mem, tab, 8);
    assert_int_equal(n, 4);
    assert_int_equal(tab[2].addr + tab[2].size, LAYOUT_MMIO_HOLE_START);
    assert_int_equal(tab[3].addr, 4 * GiB);
    assert_int_equal(tab[3].size, 3584 * MiB - LAYOUT_MMIO_HOLE_START);
    assert_int_equal(tab[3].type, E820_TYPE_RAM);
    /* RAM in the map adds up to what was asked, less the EBDA/ROM gap. */
    uint64_t ram = 0;
    for (unsigned int i = 0; i < n; i++) {
        if (tab[i].type == E820_TYPE_RAM)
            ram += tab[i].size;
        /* No entry touches the MMIO hole or the virtio windows. */
        assert_true(tab[i].addr + tab[i].size <= LAYOUT_MMIO_HOLE_START ||
                    tab[i].addr >= LAYOUT_MMIO_HOLE_END);
    }
    assert_int_equal(ram, 3584 * MiB - (1 * MiB - LAYOUT_EBDA_START));
    /* A short table truncates, never overflows. */
    struct boot_e820_entry small[2];
    assert_int_equal(bootparams_e820(&mem, small, 2), 2);
}

static void zero_page_256mib(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(x86_layout(&mem, 256 * MiB), 0);
    struct bzimage bz = test_kernel();
    uint64_t initrd;
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 5000000, &initrd), 0);
    /* Page-aligned, ends inside RAM, as high as possible. */
    assert_int_equal(initrd % 4096, 0);
    assert_true(initrd + 5000000 <= 256 * MiB);
    assert_true(initrd + 5000000 + 4096 > 256 * MiB);
    assert_true(initrd >= bz.mem_end);

    static struct boot_params zp;
    memset(&zp, 0xee, sizeof(zp));
    bootparams_build(&zp, &bz, &mem, LAYOUT_CMDLINE_ADDR, initrd, 5000000);
    assert_int_equal(zp.hdr.boot_flag, 0xaa55);
    assert_int_equal(zp.hdr.header, 0x53726448);
    assert_int_equal(zp.hdr.type_of_loader, 0xff);
    assert_int_equal(zp.hdr.loadflags, LOADED_HIGH);
    assert_int_equal(zp.hdr.cmd_line_ptr, LAYOUT_CMDLINE_ADDR);
    assert_int_equal(zp.ext_cmd_line_ptr, 0);
    assert_int_equal(zp.hdr.ramdisk_image, initrd);
    assert_int_equal(zp.hdr.ramdisk_size, 5000000);
    assert_int_equal(zp.ext_ramdisk_image, 0);
    assert_int_equal(zp.e820_entries, 3);
    /* Everything else starts zeroed (no stale 0xee). */
    assert_int_equal(zp.screen_info.orig_video_isVGA, 0);
    assert_int_equal(zp.sentinel, 0);
    /* Field offsets the kernel reads (zero-page.rst). */
    assert_int_equal(offsetof(struct boot_params, hdr), 0x1f1);
    assert_int_equal(offsetof(struct boot_params, e820_entries), 0x1e8);
    assert_int_equal(offsetof(struct boot_params, e820_table), 0x2d0);
}

static void initrd_3584mib_obeys_initrd_addr_max(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(x86_layout(&mem, 3584 * MiB), 0);
    struct bzimage bz = test_kernel();
    uint64_t initrd;
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 3 * MiB + 1, &initrd),
                     0);
    /* Below 2 GiB (initrd_addr_max), not at the top of the 3 GiB region. */
    assert_true(initrd + 3 * MiB + 1 <= 0x80000000ULL);
    assert_int_equal(initrd, 0x7fcff000ULL); /* (2 GiB - size) & ~4095 */
    /* A kernel allowing more uses the top of low RAM, below the hole. */
    bz.initrd_addr_max = 0xffffffff;
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 4096, &initrd), 0);
    assert_int_equal(initrd, LAYOUT_MMIO_HOLE_START - 4096);
}

static void initrd_too_big(void **state)
{
    (void)state;
    struct guest_mem mem;
    assert_int_equal(x86_layout(&mem, 64 * MiB), 0);
    struct bzimage bz = test_kernel();
    uint64_t initrd = 12345;
    /* 64 MiB - 48 MiB kernel = 16 MiB of room. */
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 16 * MiB, &initrd), 0);
    assert_int_equal(initrd, 48 * MiB);
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 16 * MiB + 1, &initrd),
                     -E2BIG);
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, 1ULL << 40, &initrd),
                     -E2BIG);
    assert_int_equal(bootparams_initrd_addr(&bz, &mem, UINT64_MAX, &initrd),
                     -E2BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(e820_256mib),
        cmocka_unit_test(e820_3584mib_skips_the_hole),
        cmocka_unit_test(zero_page_256mib),
        cmocka_unit_test(initrd_3584mib_obeys_initrd_addr_max),
        cmocka_unit_test(initrd_too_big),
    };
    return cmocka_run_group_tests_name("bootparams", tests, NULL, NULL);
}
