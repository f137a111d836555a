#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86_64/bzimage.h"

#define LOAD            0x100000ULL
#define IMG_SETUP_SECTS 4
#define IMG_KERNEL      (64 * 1024)
#define IMG_SIZE        ((IMG_SETUP_SECTS + 1) * 512 + IMG_KERNEL)

static uint8_t img[IMG_SIZE];
static char err[256];

static void put16(size_t off, uint16_t v)
{
    memcpy(img + off, &v, 2);
}
static void put32(size_t off, uint32_t v)
{
    memcpy(img + off, &v, 4);
}
static void put64(size_t off, uint64_t v)
{
    memcpy(img + off, &v, 8);
}

/* A plausible 2.15 header (offsets from boot.rst). */
static int make_image(void **state)
{
    (void)state;
    memset(img, 0, sizeof(img));
    img[0x1f1] = IMG_SETUP_SECTS;  /* setup_sects */
    put32(0x1f4, IMG_KERNEL / 16); /* syssize */
    put16(0x1fe, 0xaa55);          /* boot_flag */
    img[0x200] = 0xeb;             /* jump */
    img[0x201] = 0x6a;             /* header ends at 0x26c */
    put32(0x202, 0x53726448);      /* "HdrS" */
    put16(0x206, 0x020f);          /* version */
    img[0x211] = 0x01;             /* loadflags LOADED_HIGH */
    put32(0x214, 0x100000);        /* code32_start */
    put32(0x22c, 0x7fffffff);      /* initrd_addr_max */
    put32(0x230, 0x200000);        /* kernel_alignment */
    put16(0x236, 0x0001);          /* xloadflags XLF_KERNEL_64 */
    put32(0x238, 2047);            /* cmdline_size */
    put64(0x258, 0x1000000);       /* pref_address */
    put32(0x260, 0x2000000);       /* init_size */
    return 0;
}

static int parse(size_t file_size, struct bzimage *bz)
{
    size_t head = file_size < BZIMAGE_HEAD_LEN ? file_size : BZIMAGE_HEAD_LEN;
    err[0] = 0;
    return bzimage_parse(img, head, file_size, LOAD, bz, err, sizeof(err));
}

static void good_image(void **state)
{
    (void)state;
    struct bzimage bz;
    assert_int_equal(parse(IMG_SIZE, &bz), 0);
    assert_int_equal(bz.version, 0x020f);
    assert_int_equal(bz.kernel_offset, (IMG_SETUP_SECTS + 1) * 512);
    assert_int_equal(bz.kernel_size, IMG_KERNEL);
    assert_int_equal(bz.entry64, LOAD + 0x200);
    /* Decompresses at pref_address and needs init_size there. */
    assert_int_equal(bz.mem_end, 0x1000000 + 0x2000000);
    assert_int_equal(bz.initrd_addr_max, 0x7fffffff);
    assert_int_equal(bz.cmdline_max, 2047);
}

static void setup_sects_zero_means_four(void **state)
{
    (void)state;
    struct bzimage bz;
    img[0x1f1] = 0;
    assert_int_equal(parse(IMG_SIZE, &bz), 0);
    assert_int_equal(bz.kernel_offset, 5 * 512);
}

struct bad_case {
    const char *name;
    size_t off;   /* byte to change, or SIZE_MAX for none */
    uint32_t val; /* new value */
    int width;    /* bytes written */
    size_t size;  /* file size to claim */
    int expect;
    const char *msg; /* substring of the message */
};

static void hostile_headers(void **state)
{
    (void)state;
    const struct bad_case cases[] = {
        {"empty", SIZE_MAX, 0, 0, 0, -ENOEXEC, "too short"},
        {"one sector", SIZE_MAX, 0, 0, 512, -ENOEXEC, "too short"},
        {"no boot flag", 0x1fe, 0x1234, 2, IMG_SIZE, -ENOEXEC, "0xAA55"},
        {"ELF file", 0x202, 0x464c457f, 4, IMG_SIZE, -ENOEXEC, "HdrS"},
        {"protocol 2.05", 0x206, 0x0205, 2, IMG_SIZE, -ENOEXEC, "2.05"},
        {"protocol 1.00", 0x206, 0x0100, 2, IMG_SIZE, -ENOEXEC, "too old"},
        {"zImage", 0x211, 0x00, 1, IMG_SIZE, -ENOEXEC, "zImage"},
        {"32-bit only", 0x236, 0x0000, 2, IMG_SIZE, -ENOEXEC, "64-bit"},
        {"setup past EOF", 0x1f1, 0xff, 1, IMG_SIZE, -EINVAL, "truncated"},
        {"truncated kernel", SIZE_MAX, 0, 0, IMG_SIZE - 16, -EINVAL,
         "truncated"},
        {"syssize zero", 0x1f4, 0, 4, IMG_SIZE, -EINVAL, "truncated"},
        {"huge syssize", 0x1f4, 0xffffffff, 4, IMG_SIZE, -EINVAL, "truncated"},
        {"header too short", 0x201, 0x10, 1, IMG_SIZE, -EINVAL, "inconsistent"},
        {"file is only the setup", SIZE_MAX, 0, 0, 5 * 512, -EINVAL,
         "truncated"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        make_image(NULL);
        if (c->off != SIZE_MAX)
            memcpy(img + c->off, &c->val, (size_t)c->width);
        struct bzimage bz;
        memset(&bz, 0x5a, sizeof(bz));
        int ret = parse(c->size, &bz);
        if (ret != c->expect || !strstr(err, c->msg))
            fail_msg("case '%s': got %d \"%s\", want %d containing \"%s\"",
                     c->name, ret, err, c->expect, c->msg);
        /* Nothing half-filled escapes on failure. */
        assert_int_equal(bz.kernel_size, 0);
    }
}

static void old_protocol_without_init_size(void **state)
{
    (void)state;
    struct bzimage bz;
    put16(0x206, 0x0206);
    assert_int_equal(parse(IMG_SIZE, &bz), 0);
    /* No init_size before 2.10: a conservative 4x the compressed kernel. */
    assert_int_equal(bz.mem_end, LOAD + 4 * IMG_KERNEL);
}

static void every_truncation_is_refused_cleanly(void **state)
{
    (void)state;
    /* Every prefix of a good image: never a crash, never success short of
     * the full declared kernel. */
    for (size_t size = 0; size < IMG_SIZE; size += 7) {
        struct bzimage bz;
        assert_int_not_equal(parse(size, &bz), 0);
        assert_true(err[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(good_image, make_image),
        cmocka_unit_test_setup(setup_sects_zero_means_four, make_image),
        cmocka_unit_test_setup(hostile_headers, make_image),
        cmocka_unit_test_setup(old_protocol_without_init_size, make_image),
        cmocka_unit_test_setup(every_truncation_is_refused_cleanly, make_image),
    };
    return cmocka_run_group_tests_name("bzimage", tests, NULL, NULL);
}
