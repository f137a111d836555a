/* The boot timer records a time per guest write and, when given a counter
 * reader, the counters at that moment (runvm: KVM's exit counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/boot_timer.h"

static uint64_t fake_ns;
static uint64_t fake_now(void)
{
    return fake_ns;
}

static uint64_t fake_count;
static int fake_ret;
static unsigned int fake_nr_asked;
static int fake_read(void *ctx, uint64_t *out, unsigned int nr)
{
    assert_ptr_equal(ctx, &fake_count);
    fake_nr_asked = nr;
    if (fake_ret)
        return fake_ret;
    for (unsigned int i = 0; i < nr; i++)
        out[i] = fake_count * 10 + i;
    return 0;
}

static void mark(struct boot_timer *bt, uint8_t v)
{
    boot_timer_bus_ops.write(bt, 0, &v, 1);
}

static void marks_without_counters(void **state)
{
    (void)state;
    struct boot_timer bt = {.now_ns = fake_now};
    fake_ns = 5;
    mark(&bt, 0x01);
    assert_int_equal(bt.nr_marks, 1);
    assert_int_equal(bt.marks[0].ns, 5);
    assert_int_equal(bt.marks[0].value, 0x01);
    assert_false(bt.marks[0].have_counters);
}

static void marks_record_counters(void **state)
{
    (void)state;
    struct boot_timer bt = {.now_ns = fake_now,
                            .read_counters = fake_read,
                            .counters_ctx = &fake_count,
                            .nr_counters = 4};
    fake_ret = 0;
    fake_count = 7;
    mark(&bt, 0x01);
    fake_count = 9;
    mark(&bt, 0x02);
    assert_int_equal(bt.nr_marks, 2);
    assert_true(bt.marks[0].have_counters);
    assert_int_equal(bt.marks[0].counters[0], 70);
    assert_int_equal(bt.marks[0].counters[3], 73);
    assert_int_equal(bt.marks[1].counters[0], 90);
}

static void failed_read_leaves_no_counters(void **state)
{
    (void)state;
    struct boot_timer bt = {.now_ns = fake_now,
                            .read_counters = fake_read,
                            .counters_ctx = &fake_count,
                            .nr_counters = 2};
    fake_ret = -5;
    mark(&bt, 0x01);
    assert_int_equal(bt.nr_marks, 1);
    assert_false(bt.marks[0].have_counters);
    fake_ret = 0;
}

static void counter_count_is_capped(void **state)
{
    (void)state;
    struct boot_timer bt = {.now_ns = fake_now,
                            .read_counters = fake_read,
                            .counters_ctx = &fake_count,
                            .nr_counters = 1000};
    mark(&bt, 0x01);
    assert_int_equal(fake_nr_asked, BOOT_TIMER_MAX_COUNTERS);
    assert_true(bt.marks[0].have_counters);
}

static void marks_past_the_table_are_counted_not_kept(void **state)
{
    (void)state;
    struct boot_timer bt = {.now_ns = fake_now,
                            .read_counters = fake_read,
                            .counters_ctx = &fake_count,
                            .nr_counters = 1};
    fake_nr_asked = 0;
    for (int i = 0; i < BOOT_TIMER_MAX_MARKS; i++)
        mark(&bt, (uint8_t)i);
    fake_nr_asked = 0;
    mark(&bt, 0xff);
    assert_int_equal(bt.nr_marks, BOOT_TIMER_MAX_MARKS + 1);
    assert_int_equal(fake_nr_asked, 0); /* no slot: counters not read */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(marks_without_counters),
        cmocka_unit_test(marks_record_counters),
        cmocka_unit_test(failed_read_leaves_no_counters),
        cmocka_unit_test(counter_count_is_capped),
        cmocka_unit_test(marks_past_the_table_are_counted_not_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
