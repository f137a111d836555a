#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/bus.h"

struct fake_dev {
    uint64_t last_offset;
    uint32_t last_len;
    uint8_t last_data[8];
    int reads, writes;
};

static void fake_read(void *opaque, uint64_t offset, uint8_t *data,
                      uint32_t len)
{
    struct fake_dev *d = opaque;
    d->reads++;
    d->last_offset = offset;
    d->last_len = len;
    memset(data, 0xab, len);
}

static void fake_write(void *opaque, uint64_t offset, const uint8_t *data,
                       uint32_t len)
{
    struct fake_dev *d = opaque;
    d->writes++;
    d->last_offset = offset;
    d->last_len = len;
    memcpy(d->last_data, data, len);
}

static const struct bus_dev_ops fake_ops = {fake_read, fake_write};
static const struct bus_dev_ops silent_ops = {NULL, NULL};

static void register_rejects_bad_ranges(void **state)
{
    (void)state;
    struct bus bus = {0};
    struct fake_dev d = {0};
    assert_int_equal(bus_register(&bus, 0x1000, 0, &fake_ops, &d), -EINVAL);
    assert_int_equal(bus_register(&bus, UINT64_MAX, 2, &fake_ops, &d), -EINVAL);
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, NULL, &d), -EINVAL);
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &d), 0);
    /* Overlaps from every side, and exact duplicates. */
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &d), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x0f80, 0x81, &fake_ops, &d), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x10ff, 0x10, &fake_ops, &d), -EEXIST);
    assert_int_equal(bus_register(&bus, 0x0f00, 0x1000, &fake_ops, &d),
                     -EEXIST);
    assert_int_equal(bus_register(&bus, 0x1010, 0x10, &fake_ops, &d), -EEXIST);
    /* Adjacent on both sides is fine. */
    assert_int_equal(bus_register(&bus, 0x0f00, 0x100, &fake_ops, &d), 0);
    assert_int_equal(bus_register(&bus, 0x1100, 0x100, &fake_ops, &d), 0);
    /* A range ending at the top of the address space is fine. */
    assert_int_equal(
        bus_register(&bus, UINT64_MAX - 0xfff, 0x1000, &fake_ops, &d), 0);
    assert_int_equal(bus.nr_ranges, 4);
    for (unsigned int i = 1; i < bus.nr_ranges; i++)
        assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
}

static void register_fills_up(void **state)
{
    (void)state;
    struct bus bus = {0};
    struct fake_dev d = {0};
    for (int i = 0; i < BUS_MAX_RANGES; i++)
        assert_int_equal(
            bus_register(&bus, (uint64_t)i * 0x100, 0x10, &fake_ops, &d), 0);
    assert_int_equal(bus_register(&bus, 0x100000, 0x10, &fake_ops, &d),
                     -ENOSPC);
}

static void dispatch(void **state)
{
    (void)state;
    struct bus bus = {0};
    struct fake_dev a = {0}, b = {0};
    assert_int_equal(bus_register(&bus, 0x3f8, 8, &fake_ops, &a), 0);
    assert_int_equal(bus_register(&bus, 0x400, 8, &fake_ops, &b), 0);
    uint8_t v[8] = {1, 2, 3, 4};
    assert_int_equal(bus_write(&bus, 0x3fc, v, 4), 0);
    assert_int_equal(a.writes, 1);
    assert_int_equal(a.last_offset, 4);
    assert_memory_equal(a.last_data, v, 4);
    assert_int_equal(bus_read(&bus, 0x404, v, 2), 0);
    assert_int_equal(b.reads, 1);
    assert_int_equal(b.last_offset, 4);
    assert_int_equal(v[0], 0xab);
    /* Unclaimed reads are zero; straddling accesses and bad sizes fail. */
    memset(v, 0xff, sizeof(v));
    assert_int_equal(bus_read(&bus, 0x500, v, 4), -ENOENT);
    assert_int_equal(v[0] | v[1] | v[2] | v[3], 0);
    assert_int_equal(bus_read(&bus, 0x3fe, v, 4), -ENOENT);
    assert_int_equal(bus_write(&bus, 0x3f8, v, 3), -EINVAL);
    assert_int_equal(bus_write(&bus, 0x3f8, v, 0), -EINVAL);
    assert_int_equal(bus_read(&bus, UINT64_MAX, v, 8), -ENOENT);
    assert_int_equal(a.reads + a.writes + b.reads + b.writes, 2);
}

static void null_handlers_read_zero(void **state)
{
    (void)state;
    struct bus bus = {0};
    assert_int_equal(bus_register(&bus, 0x80, 1, &silent_ops, NULL), 0);
    uint8_t v = 0x5a;
    assert_int_equal(bus_read(&bus, 0x80, &v, 1), 0);
    assert_int_equal(v, 0);
    assert_int_equal(bus_write(&bus, 0x80, &v, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(register_rejects_bad_ranges),
        cmocka_unit_test(register_fills_up),
        cmocka_unit_test(dispatch),
        cmocka_unit_test(null_handlers_read_zero),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
