#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Walks the table like Linux's mpparse.c and checks what it would see. */
static void check_table(unsigned int nr_cpus)
{
    uint8_t buf[LAYOUT_MPTABLE_MAX];
    memset(buf, 0xcc, sizeof(buf));
    assert_int_equal(
        mptable_build(buf, sizeof(buf), LAYOUT_MPTABLE_ADDR, nr_cpus), 0);
    /* Floating pointer: "_MP_", 16 bytes summing to 0, 16-byte aligned. */
    assert_memory_equal(buf, "_MP_", 4);
    assert_int_equal(buf[8], 1);
    assert_int_equal(buf[9], 4);
    assert_int_equal(sum(buf, 16), 0);
    assert_int_equal(LAYOUT_MPTABLE_ADDR % 16, 0);
    uint32_t physptr = rd32(buf + 4);
    assert_int_equal(physptr, LAYOUT_MPTABLE_ADDR + 16);
    const uint8_t *t = buf + (physptr - LAYOUT_MPTABLE_ADDR);
    assert_memory_equal(t, "PCMP", 4);
    uint16_t len = rd16(t + 4);
    assert_int_equal(len + 16, mptable_size(nr_cpus));
    assert_int_equal(sum(t, len), 0);
    assert_int_equal(rd32(t + 36), LAYOUT_LAPIC_ADDR);
    uint16_t count = rd16(t + 34);
    unsigned int cpus = 0, bsp = 0, buses = 0, ioapics = 0, ints = 0, lints = 0;
    const uint8_t *e = t + 44;
    for (unsigned int i = 0; i < count; i++) {
        assert_true(e < t + len);
        switch (e[0]) {
        case 0:
            assert_int_equal(e[1], cpus); /* APIC id = index */
            assert_true(e[3] & 1);
            if (e[3] & 2)
                bsp++;
            cpus++;
            e += 20;
            break;
        case 1:
            assert_memory_equal(e + 2, "ISA   ", 6);
            buses++;
            e += 8;
            break;
        case 2:
            assert_int_equal(e[1], nr_cpus); /* id after the CPUs */
            assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC_ADDR);
            ioapics++;
            e += 8;
            break;
        case 3:
            assert_int_equal(e[5], e[7]); /* ISA IRQ n -> pin n */
            assert_int_equal(e[6], nr_cpus);
            ints++;
            e += 8;
            break;
        case 4:
            lints++;
            e += 8;
            break;
        default: fail_msg("unknown entry type %u", e[0]);
        }
    }
    assert_ptr_equal(e, t + len);
    assert_int_equal(cpus, nr_cpus);
    assert_int_equal(bsp, 1);
    assert_int_equal(buses, 1);
    assert_int_equal(ioapics, 1);
    assert_int_equal(ints, MPTABLE_IOAPIC_PINS);
    assert_int_equal(lints, 2);
    /* Nothing written past the tables. */
    for (size_t i = mptable_size(nr_cpus); i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xcc);
}

static void one_cpu(void **state)
{
    (void)state;
    check_table(1);
}
static void two_cpus(void **state)
{
    (void)state;
    check_table(2);
}
static void max_cpus(void **state)
{
    (void)state;
    check_table(MPTABLE_MAX_CPUS);
}

static void refuses_bad_counts_and_small_buffers(void **state)
{
    (void)state;
    uint8_t buf[LAYOUT_MPTABLE_MAX];
    assert_int_equal(mptable_build(buf, sizeof(buf), LAYOUT_MPTABLE_ADDR, 0),
                     -EINVAL);
    assert_int_equal(mptable_build(buf, sizeof(buf), LAYOUT_MPTABLE_ADDR,
                                   MPTABLE_MAX_CPUS + 1),
                     -EINVAL);
    assert_int_equal(
        mptable_build(buf, mptable_size(2) - 1, LAYOUT_MPTABLE_ADDR, 2),
        -ENOSPC);
    assert_int_equal(mptable_build(buf, sizeof(buf), 0xfffffff0ULL, 1),
                     -ENOSPC);
    /* The largest table fits the space layout.h reserves. */
    assert_true(mptable_size(MPTABLE_MAX_CPUS) <= LAYOUT_MPTABLE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_cpu),
        cmocka_unit_test(two_cpus),
        cmocka_unit_test(max_cpus),
        cmocka_unit_test(refuses_bad_counts_and_small_buffers),
    };
    return cmocka_run_group_tests_name("mptable", tests, NULL, NULL);
}
