/* arch/aarch64/image.c and fdt.c (#18): the arm64 Image header, hostile
 * ones refused, the kernel's placement, and the device tree read back
 * with libfdt. Plain code: it runs on any host. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libfdt.h>
#include <stdint.h>
#include <string.h>

#include "arch/aarch64/fdt.h"
#include "arch/aarch64/image.h"
#include "arch/aarch64/layout.h"

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A header as Linux 6.1 writes it: text_offset 0, 4 KiB pages, anywhere. */
static void good_head(uint8_t h[ARM64_IMAGE_HEAD_LEN], uint64_t image_size)
{
    memset(h, 0, ARM64_IMAGE_HEAD_LEN);
    h[0] = 0x4d; /* "MZ" of the EFI stub, then a branch */
    h[1] = 0x5a;
    put64(h + 16, image_size);
    put64(h + 24, 1 << 1 | 1 << 3);
    h[56] = 'A';
    h[57] = 'R';
    h[58] = 'M';
    h[59] = 0x64;
}

static void image_good(void **state)
{
    (void)state;
    uint8_t h[ARM64_IMAGE_HEAD_LEN];
    char err[256];
    struct arm64_image img;
    good_head(h, 40u << 20);
    assert_int_equal(
        arm64_image_parse(h, sizeof(h), 30u << 20, &img, err, sizeof(err)), 0);
    assert_int_equal(img.text_offset, 0);
    assert_int_equal(img.image_size, 40u << 20);
    assert_int_equal(img.page_kib, 4);
    assert_true(img.anywhere);
    uint64_t at;
    /* RAM at 1 GiB + 1 MiB: the kernel goes to the next 2 MiB line. */
    assert_int_equal(
        arm64_image_place(&img, ARM64_RAM_BASE + (1u << 20), 256u << 20, &at),
        0);
    assert_int_equal(at, ARM64_RAM_BASE + (2u << 20));
    put64(h + 8, 0x80000); /* an older kernel's text_offset */
    assert_int_equal(
        arm64_image_parse(h, sizeof(h), 30u << 20, &img, err, sizeof(err)), 0);
    assert_int_equal(arm64_image_place(&img, ARM64_RAM_BASE, 256u << 20, &at),
                     0);
    assert_int_equal(at, ARM64_RAM_BASE + 0x80000);
    /* Too little RAM, and sizes that overflow. */
    assert_int_equal(arm64_image_place(&img, ARM64_RAM_BASE, 40u << 20, &at),
                     -ENOSPC);
    assert_int_equal(arm64_image_place(&img, UINT64_MAX - 4096, 4096, &at),
                     -ENOSPC);
    assert_int_equal(arm64_image_place(&img, 4096, UINT64_MAX, &at), -ENOSPC);
}

static void image_hostile(void **state)
{
    (void)state;
    uint8_t h[0x400];
    char err[256];
    struct arm64_image img;
    static const struct {
        const char *what;
        size_t off;
        uint64_t val;
        size_t len;
        uint64_t file;
        int ret;
        const char *says;
    } cases[] = {
        {"short", 0, 0, 32, 32, -EINVAL, "too short"},
        {"no magic", 56, 0, 64, 1 << 20, -ENOEXEC, "magic"},
        {"no image_size", 16, 0, 64, 1 << 20, -ENOEXEC, "too old"},
        {"big-endian", 24, 1, 64, 1 << 20, -ENOEXEC, "big-endian"},
        {"unknown flags", 24, 1 << 4, 64, 1 << 20, -ENOEXEC, "flags"},
        {"text_offset 2 MiB", 8, 2 << 20, 64, 1 << 20, -EINVAL, "text_offset"},
        {"text_offset odd", 8, 0x80001, 64, 1 << 20, -EINVAL, "text_offset"},
        {"huge", 16, 1ull << 40, 64, 1 << 20, -EINVAL, "256 MiB"},
        {"file past image_size", 16, 1 << 20, 64, 2 << 20, -EINVAL,
         "smaller than the file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        memset(h, 0, sizeof(h));
        good_head(h, 40u << 20);
        if (cases[i].off == 56)
            memset(h + 56, 0, 4);
        else if (cases[i].off)
            put64(h + cases[i].off, cases[i].val);
        err[0] = '\0';
        int ret = arm64_image_parse(h, cases[i].len, cases[i].file, &img, err,
                                    sizeof(err));
        if (ret != cases[i].ret || !strstr(err, cases[i].says))
            fail_msg("%s: %d '%s'", cases[i].what, ret, err);
    }
    /* A gzip-compressed Image and an x86 bzImage say what they are. */
    memset(h, 0, sizeof(h));
    h[0] = 0x1f;
    h[1] = 0x8b;
    assert_int_equal(
        arm64_image_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)),
        -ENOEXEC);
    assert_non_null(strstr(err, "gzip"));
    memset(h, 0, sizeof(h));
    memcpy(h + 0x202, "HdrS", 4);
    assert_int_equal(
        arm64_image_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)),
        -ENOEXEC);
    assert_non_null(strstr(err, "bzImage"));
    assert_int_equal(arm64_image_parse(h, 0, 0, &img, err, sizeof(err)),
                     -EINVAL);
}

static const struct arm64_fdt_dev virtio[2] = {
    {ARM64_VIRTIO_BASE, ARM64_VIRTIO_SIZE, ARM64_SPI_VIRTIO_BASE},
    {ARM64_VIRTIO_BASE + ARM64_VIRTIO_SIZE, ARM64_VIRTIO_SIZE,
     ARM64_SPI_VIRTIO_BASE + 1},
};

static struct arm64_fdt_desc desc(void)
{
    return (struct arm64_fdt_desc){
        .ram_base = ARM64_RAM_BASE,
        .ram_size = 256u << 20,
        .nr_cpus = 2,
        .cmdline = "console=ttyS0 reboot=k panic=-1",
        .initrd_start = ARM64_RAM_BASE + (200u << 20),
        .initrd_end = ARM64_RAM_BASE + (210u << 20),
        .uart = {ARM64_UART_BASE, ARM64_UART_SIZE, ARM64_SPI_UART},
        .virtio = virtio,
        .nr_virtio = 2,
    };
}

static uint64_t get64(const void *fdt, const char *path, const char *prop,
                      int idx)
{
    int node = fdt_path_offset(fdt, path);
    assert_true(node >= 0);
    int len;
    const uint8_t *v = fdt_getprop(fdt, node, prop, &len);
    assert_non_null(v);
    assert_true((idx + 1) * 8 <= len);
    fdt64_t be; /* cells are only 4-byte aligned */
    memcpy(&be, v + 8 * idx, sizeof(be));
    return fdt64_to_cpu(be);
}

static uint32_t get32(const void *fdt, const char *path, const char *prop,
                      int idx)
{
    int node = fdt_path_offset(fdt, path);
    assert_true(node >= 0);
    int len;
    const fdt32_t *v = fdt_getprop(fdt, node, prop, &len);
    assert_non_null(v);
    assert_true((idx + 1) * 4 <= len);
    return fdt32_to_cpu(v[idx]);
}

static void fdt_read_back(void **state)
{
    (void)state;
    static uint8_t buf[64 << 10];
    char err[256];
    size_t size;
    struct arm64_fdt_desc d = desc();
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)), 0);
    assert_int_equal(fdt_check_header(buf), 0);
    assert_int_equal(size, fdt_totalsize(buf));
    assert_int_equal(get64(buf, "/memory@40000000", "reg", 0), ARM64_RAM_BASE);
    assert_int_equal(get64(buf, "/memory@40000000", "reg", 1), 256u << 20);
    assert_string_equal(
        fdt_getprop(buf, fdt_path_offset(buf, "/chosen"), "bootargs", NULL),
        d.cmdline);
    assert_string_equal(
        fdt_getprop(buf, fdt_path_offset(buf, "/chosen"), "stdout-path", NULL),
        "/uart@9000000");
    assert_int_equal(get64(buf, "/chosen", "linux,initrd-start", 0),
                     d.initrd_start);
    assert_int_equal(get64(buf, "/chosen", "linux,initrd-end", 0),
                     d.initrd_end);
    assert_int_equal(get32(buf, "/cpus/cpu@1", "reg", 0), 1);
    assert_true(fdt_path_offset(buf, "/cpus/cpu@2") < 0);
    assert_string_equal(
        fdt_getprop(buf, fdt_path_offset(buf, "/psci"), "method", NULL), "hvc");
    /* The GIC: distributor, then two redistributor frames; every
     * interrupt's parent. */
    assert_int_equal(get64(buf, "/intc@8000000", "reg", 2),
                     ARM64_GIC_REDIST_BASE);
    assert_int_equal(get64(buf, "/intc@8000000", "reg", 3),
                     2 * ARM64_GIC_REDIST_SIZE);
    assert_int_equal(get32(buf, "/", "interrupt-parent", 0),
                     ARM64_FDT_GIC_PHANDLE);
    assert_int_equal(fdt_node_offset_by_phandle(buf, ARM64_FDT_GIC_PHANDLE),
                     fdt_path_offset(buf, "/intc@8000000"));
    assert_int_equal(get32(buf, "/timer", "interrupts", 4), ARM64_PPI_TIMER_NS);
    assert_int_equal(get32(buf, "/uart@9000000", "interrupts", 1),
                     ARM64_SPI_UART);
    assert_int_equal(get64(buf, "/virtio_mmio@a000200", "reg", 0),
                     ARM64_VIRTIO_BASE + ARM64_VIRTIO_SIZE);
    assert_int_equal(get32(buf, "/virtio_mmio@a000200", "interrupts", 1),
                     ARM64_SPI_VIRTIO_BASE + 1);
    /* No initramfs: no initrd properties. */
    d.initrd_start = d.initrd_end = 0;
    d.nr_virtio = 0;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)), 0);
    assert_null(fdt_getprop(buf, fdt_path_offset(buf, "/chosen"),
                            "linux,initrd-start", NULL));
    assert_true(fdt_path_offset(buf, "/virtio_mmio@a000000") < 0);
    /* The most vCPUs the layout has redistributors for. */
    d.nr_cpus = ARM64_MAX_CPUS;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)), 0);
    assert_int_equal(get32(buf, "/cpus/cpu@7a", "reg", 0), 7 << 8 | 10);
    assert_true(ARM64_GIC_REDIST_BASE +
                    ARM64_MAX_CPUS * ARM64_GIC_REDIST_SIZE <=
                ARM64_UART_BASE);
}

static void fdt_hostile(void **state)
{
    (void)state;
    static uint8_t buf[64 << 10];
    static char long_cmdline[80 << 10];
    char err[256];
    size_t size;
    struct arm64_fdt_desc d = desc();
    d.nr_cpus = 0;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    d.nr_cpus = ARM64_MAX_CPUS + 1;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    d = desc();
    d.nr_virtio = ARM64_VIRTIO_MAX + 1;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    d = desc();
    d.initrd_end = d.initrd_start; /* empty */
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    d = desc();
    d.initrd_end = d.ram_base + d.ram_size + 1; /* past RAM */
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "initramfs"));
    d = desc();
    d.ram_base = UINT64_MAX - 10;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -EINVAL);
    /* Does not fit: a small buffer, a command line longer than it. */
    d = desc();
    assert_int_equal(arm64_fdt_build(buf, 256, &d, &size, err, sizeof(err)),
                     -ENOSPC);
    assert_non_null(strstr(err, "does not fit"));
    memset(long_cmdline, 'x', sizeof(long_cmdline) - 1);
    d.cmdline = long_cmdline;
    assert_int_equal(
        arm64_fdt_build(buf, sizeof(buf), &d, &size, err, sizeof(err)),
        -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(image_good),
        cmocka_unit_test(image_hostile),
        cmocka_unit_test(fdt_read_back),
        cmocka_unit_test(fdt_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
