#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "arch/arch.h"
#include "core/guest_mem.h"

/* The x86-64 RAM layout for ram_size, described (not mapped) in mem. */
static int x86_layout(struct guest_mem *mem, uint64_t ram_size)
{
    struct gm_region r[GM_MAX_REGIONS];
    unsigned int n;
    int ret = arch_ram_layout(ram_size, r, &n);
    return ret < 0 ? ret : gm_describe(mem, r, n);
}

static void layout_small(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(x86_layout(&m, 256 * MiB), 0);
    assert_int_equal(m.nr_regions, 1);
    assert_int_equal(m.regions[0].gpa, 0);
    assert_int_equal(m.regions[0].size, 256 * MiB);
}

static void layout_splits_around_hole(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(x86_layout(&m, 3584 * MiB), 0);
    assert_int_equal(m.nr_regions, 2);
    assert_int_equal(m.regions[0].size, LAYOUT_MMIO_HOLE_START);
    assert_int_equal(m.regions[1].gpa, LAYOUT_MMIO_HOLE_END);
    assert_int_equal(m.regions[1].size, 3584 * MiB - LAYOUT_MMIO_HOLE_START);
    assert_int_equal(m.ram_size, 3584 * MiB);
}

static void layout_rejects_bad_sizes(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(x86_layout(&m, 0), -EINVAL);
    assert_int_equal(x86_layout(&m, 4097), -EINVAL);
}

static void describe_rejects_bad_layouts(void **state)
{
    (void)state;
    struct guest_mem m;
    struct gm_region two[2] = {{.gpa = 0, .size = 2 * MiB},
                               {.gpa = MiB, .size = 2 * MiB}};
    assert_int_equal(gm_describe(&m, two, 2), -EINVAL); /* overlap */
    two[1].gpa = 2 * MiB + 1;
    assert_int_equal(gm_describe(&m, two, 2), -EINVAL); /* unaligned gpa */
    two[1].gpa = 4 * MiB;
    two[1].size = 4097;
    assert_int_equal(gm_describe(&m, two, 2), -EINVAL); /* unaligned size */
    two[1].size = 0;
    assert_int_equal(gm_describe(&m, two, 2), -EINVAL); /* empty region */
    two[1] = (struct gm_region){.gpa = UINT64_MAX - 4095, .size = 8192};
    assert_int_equal(gm_describe(&m, two, 2), -EINVAL); /* wraps */
    assert_int_equal(gm_describe(&m, two, 0), -EINVAL);
    assert_int_equal(gm_describe(&m, two, GM_MAX_REGIONS + 1), -EINVAL);
    two[1] = (struct gm_region){.gpa = 4 * MiB, .size = MiB};
    assert_int_equal(gm_describe(&m, two, 2), 0);
    assert_int_equal(m.ram_size, 3 * MiB);
}

/* The VmFlags of the mapping holding p, from /proc/self/smaps. */
static void vm_flags(const void *p, char *flags, size_t len)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool in = false;
    flags[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0)
            snprintf(flags, len, "%s", line + 8);
    }
    fclose(f);
}

/* Guest RAM is left out of core dumps: a crash of runvm must not write
 * what the guest held into a file. */
static void ram_not_in_core_dumps(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(gm_init(&m, 4 * MiB), 0);
    char flags[256];
    vm_flags(gm_ptr(&m, 0, 1), flags, sizeof(flags));
    assert_non_null(strstr(flags, " dd"));
    vm_flags(gm_ptr(&m, 4 * MiB - 1, 1), flags, sizeof(flags));
    assert_non_null(strstr(flags, " dd"));
    gm_free(&m);
}

static void ptr_bounds(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(gm_init(&m, 1 * MiB), 0);
    uint8_t *base = gm_ptr(&m, 0, 1);
    assert_non_null(base);
    assert_ptr_equal(gm_ptr(&m, 4096, 16), base + 4096);
    assert_ptr_equal(gm_ptr(&m, MiB - 1, 1), base + MiB - 1);
    assert_null(gm_ptr(&m, MiB - 1, 2)); /* runs past the end */
    assert_null(gm_ptr(&m, MiB, 0));     /* first byte outside */
    assert_null(gm_ptr(&m, MiB, 1));
    assert_null(gm_ptr(&m, UINT64_MAX, 2));  /* gpa + len overflows */
    assert_null(gm_ptr(&m, 16, UINT64_MAX)); /* len overflows */
    assert_null(gm_ptr(&m, 0, MiB + 1));
    gm_free(&m);
}

static void ptr_never_spans_hole(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(x86_layout(&m, 3584 * MiB), 0);
    /* Regions unmapped (layout only): every lookup is NULL, but the
     * boundaries must be refused for the right reason too. */
    m.regions[0].hva = (uint8_t *)0x1000;
    m.regions[1].hva = (uint8_t *)0x100000000000ULL;
    assert_non_null(gm_ptr(&m, LAYOUT_MMIO_HOLE_START - 8, 8));
    assert_null(gm_ptr(&m, LAYOUT_MMIO_HOLE_START - 8, 16));
    assert_null(gm_ptr(&m, LAYOUT_VIRTIO_MMIO_BASE, 4));
    assert_non_null(gm_ptr(&m, LAYOUT_MMIO_HOLE_END, 4));
    assert_null(gm_ptr(&m, LAYOUT_MMIO_HOLE_END - 2, 4));
}

static void read_write_roundtrip(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(gm_init(&m, 64 * KiB), 0);
    const char msg[] = "hello guest";
    assert_int_equal(gm_write(&m, 100, msg, sizeof(msg)), 0);
    char back[sizeof(msg)];
    assert_int_equal(gm_read(&m, back, 100, sizeof(back)), 0);
    assert_string_equal(back, msg);
    assert_int_equal(gm_write(&m, 64 * KiB - 2, msg, 4), -EFAULT);
    assert_int_equal(gm_read(&m, back, 64 * KiB, 1), -EFAULT);
    gm_free(&m);
    gm_free(&m); /* idempotent */
}

/* Whether the VmFlags of the mapping that starts at p (/proc/self/smaps)
 * list flag: 1, 0, or -1 when the mapping is not found. */
static int has_vm_flag(const void *p, const char *flag)
{
    char start[32], line[512], word[8];
    snprintf(start, sizeof(start), "%lx-", (unsigned long)(uintptr_t)p);
    snprintf(word, sizeof(word), " %s", flag);
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    int in = 0, ret = -1;
    while (fgets(line, sizeof(line), f)) {
        char *dash = strchr(line, '-'), *space = strchr(line, ' ');
        if (dash && space && dash < space) /* a mapping's first line */
            in = strncmp(line, start, strlen(start)) == 0;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            ret = strstr(line, word) != NULL;
            break;
        }
    }
    fclose(f);
    return ret;
}

static void ram_huge_page_aligned_and_advised(void **state)
{
    (void)state;
    struct guest_mem m;
    assert_int_equal(gm_init(&m, 8 * MiB), 0);
    uint8_t *base = gm_ptr(&m, 0, 8 * MiB);
    assert_non_null(base);
    assert_int_equal((uintptr_t)base % GM_HUGE_ALIGN, 0);
    base[0] = 1;
    base[8 * MiB - 1] = 2; /* all of it is mapped */
    /* madvise(MADV_HUGEPAGE) shows as "hg" where the kernel has THP. */
    if (access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0) {
        assert_int_equal(has_vm_flag(base, "hg"), 1);
    }
    gm_free(&m);
    /* Nothing of it is left mapped. */
    assert_int_equal(msync(base, 8 * MiB, MS_ASYNC), -1);
    assert_int_equal(errno, ENOMEM);
}

/* A snapshot's memory file mapped copy-on-write: the guest sees the file's
 * bytes at each region's offset, its writes stay its own, two mappings of
 * one file share what neither wrote, and bad offsets are refused. */
static void file_backed_copy_on_write(void **state)
{
    (void)state;
    const uint64_t page = GM_PAGE_SIZE;
    int fd = memfd_create("test_guest_mem", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(6 * page)), 0);
    for (unsigned int i = 0; i < 6; i++) {
        uint8_t b[64];
        memset(b, 'a' + (int)i, sizeof(b));
        assert_int_equal(pwrite(fd, b, sizeof(b), (off_t)(i * page)),
                         (ssize_t)sizeof(b));
    }
    struct gm_region layout[2] = {{.gpa = 0, .size = 2 * page},
                                  {.gpa = 0x100000000ULL, .size = 3 * page}};
    uint64_t offsets[2] = {page, 3 * page};
    struct guest_mem a, b;
    assert_int_equal(gm_init_file(&a, layout, 2, fd, offsets), 0);
    assert_int_equal(gm_init_file(&b, layout, 2, fd, offsets), 0);
    assert_int_equal(a.ram_size, 5 * page);
    uint8_t c;
    assert_int_equal(gm_read(&a, &c, 0, 1), 0);
    assert_int_equal(c, 'b'); /* file page 1 */
    assert_int_equal(gm_read(&a, &c, page, 1), 0);
    assert_int_equal(c, 'c');
    assert_int_equal(gm_read(&a, &c, 0x100000000ULL + 2 * page, 1), 0);
    assert_int_equal(c, 'f'); /* file page 5 */
    assert_int_equal(((uintptr_t)a.regions[1].hva) % GM_HUGE_ALIGN, 0);
    /* a's write is a's alone: b and the file keep theirs. */
    assert_int_equal(gm_write(&a, 0, "X", 1), 0);
    assert_int_equal(gm_read(&b, &c, 0, 1), 0);
    assert_int_equal(c, 'b');
    assert_int_equal(pread(fd, &c, 1, (off_t)page), 1);
    assert_int_equal(c, 'b');
    char flags[256];
    vm_flags(a.regions[0].hva, flags, sizeof(flags));
    assert_non_null(strstr(flags, " dd"));
    gm_free(&a);
    gm_free(&b);
    /* Offsets that are not page-aligned, or a layout that is bad. */
    offsets[1] = 3 * page + 1;
    assert_int_equal(gm_init_file(&a, layout, 2, fd, offsets), -EINVAL);
    offsets[1] = 3 * page;
    layout[1].gpa = page;
    assert_int_equal(gm_init_file(&a, layout, 2, fd, offsets), -EINVAL);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_small),
        cmocka_unit_test(layout_splits_around_hole),
        cmocka_unit_test(layout_rejects_bad_sizes),
        cmocka_unit_test(describe_rejects_bad_layouts),
        cmocka_unit_test(ptr_bounds),
        cmocka_unit_test(ram_not_in_core_dumps),
        cmocka_unit_test(ptr_never_spans_hole),
        cmocka_unit_test(read_write_roundtrip),
        cmocka_unit_test(ram_huge_page_aligned_and_advised),
        cmocka_unit_test(file_backed_copy_on_write),
    };
    return cmocka_run_group_tests_name("guest_mem", tests, NULL, NULL);
}
