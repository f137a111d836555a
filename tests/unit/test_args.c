#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "cli/args.h"

static void parses_numbers_in_range(void **state)
{
    (void)state;
    unsigned long v = 0;
    assert_int_equal(args_parse_ul("256", 32, 65536, &v), 0);
    assert_int_equal(v, 256);
    assert_int_equal(args_parse_ul("32", 32, 65536, &v), 0);
    assert_int_equal(v, 32);
    assert_int_equal(args_parse_ul("65536", 32, 65536, &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(args_parse_ul("007", 1, 10, &v), 0); /* decimal */
    assert_int_equal(v, 7);
}

static void refuses_what_is_not_a_number(void **state)
{
    (void)state;
    unsigned long v = 99;
    const char *bad[] = {"", "-5", "+5", " 5", "5 ", "12abc", "0x10",
                         "1e3", "abc", "5\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(args_parse_ul(bad[i], 0, ULONG_MAX, &v), -EINVAL);
        assert_int_equal(v, 99); /* untouched */
    }
}

static void refuses_out_of_range(void **state)
{
    (void)state;
    unsigned long v = 99;
    assert_int_equal(args_parse_ul("31", 32, 65536, &v), -ERANGE);
    assert_int_equal(args_parse_ul("65537", 32, 65536, &v), -ERANGE);
    assert_int_equal(args_parse_ul("0", 1, 32, &v), -ERANGE);
    /* Past ULONG_MAX: strtoul saturates and says ERANGE. */
    assert_int_equal(args_parse_ul("99999999999999999999999", 0, ULONG_MAX,
                                   &v), -ERANGE);
    assert_int_equal(v, 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_numbers_in_range),
        cmocka_unit_test(refuses_what_is_not_a_number),
        cmocka_unit_test(refuses_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
