#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/state.h"

static void round_trip(void **unused)
{
    (void)unused;
    struct state_w w;
    state_w_init(&w);
    state_put_u8(&w, 0xab);
    state_put_u16(&w, 0x1234);
    state_put_u32(&w, 0xdeadbeef);
    state_put_u64(&w, 0x0102030405060708ULL);
    state_put_bytes(&w, "xyz", 3);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, 1 + 2 + 4 + 8 + 3);
    /* little-endian on the wire, whatever the host */
    assert_int_equal(w.buf[1], 0x34);
    assert_int_equal(w.buf[3], 0xef);
    assert_int_equal(w.buf[7], 0x08);

    struct state_r r;
    state_r_init(&r, w.buf, w.len);
    assert_int_equal(state_get_u8(&r), 0xab);
    assert_int_equal(state_get_u16(&r), 0x1234);
    assert_int_equal(state_get_u32(&r), 0xdeadbeef);
    assert_true(state_get_u64(&r) == 0x0102030405060708ULL);
    char s[3];
    state_get_bytes(&r, s, 3);
    assert_memory_equal(s, "xyz", 3);
    assert_int_equal(state_r_done(&r), 0);
    state_w_free(&w);
}

static void grows_past_initial_buffer(void **unused)
{
    (void)unused;
    struct state_w w;
    state_w_init(&w);
    for (uint32_t i = 0; i < 100000; i++)
        state_put_u32(&w, i);
    assert_int_equal(w.err, 0);
    struct state_r r;
    state_r_init(&r, w.buf, w.len);
    for (uint32_t i = 0; i < 100000; i++)
        assert_int_equal(state_get_u32(&r), i);
    assert_int_equal(state_r_done(&r), 0);
    state_w_free(&w);
}

static void short_input_is_sticky(void **unused)
{
    (void)unused;
    uint8_t b[5] = {1, 2, 3, 4, 5};
    struct state_r r;
    state_r_init(&r, b, sizeof(b));
    assert_int_equal(state_get_u32(&r), 0x04030201);
    assert_true(state_get_u64(&r) == 0);   /* 1 byte left: too short */
    assert_int_equal(state_get_u8(&r), 0); /* sticky, even though 1 is left */
    uint8_t d[4] = {9, 9, 9, 9};
    state_get_bytes(&r, d, sizeof(d));
    assert_memory_equal(d, "\0\0\0\0", 4);
    assert_int_equal(state_r_done(&r), -EBADMSG);
}

static void trailing_bytes_and_fail(void **unused)
{
    (void)unused;
    uint8_t b[3] = {1, 2, 3};
    struct state_r r;
    state_r_init(&r, b, sizeof(b));
    state_get_u16(&r);
    assert_int_equal(state_r_done(&r), -EBADMSG); /* one byte unread */
    state_r_init(&r, b, sizeof(b));
    state_get_u8(&r);
    state_r_fail(&r);
    assert_int_equal(state_get_u16(&r), 0);
    assert_int_equal(state_r_done(&r), -EBADMSG);
    state_r_init(&r, NULL, 100); /* no bytes at all */
    assert_int_equal(state_get_u8(&r), 0);
    assert_int_equal(state_r_done(&r), -EBADMSG);
}

static void span_points_into_buffer(void **unused)
{
    (void)unused;
    uint8_t b[6] = {1, 2, 3, 4, 5, 6};
    struct state_r r;
    state_r_init(&r, b, sizeof(b));
    assert_int_equal(state_get_u8(&r), 1);
    const uint8_t *s = state_get_span(&r, 3);
    assert_ptr_equal(s, b + 1);
    assert_ptr_equal(state_get_span(&r, 0), b + 4);
    assert_int_equal(state_get_u16(&r), 0x0605);
    assert_int_equal(state_r_done(&r), 0);

    state_r_init(&r, b, sizeof(b));
    state_get_u32(&r);
    assert_null(state_get_span(&r, 3)); /* 2 left */
    assert_int_equal(r.err, -EBADMSG);
    assert_null(state_get_span(&r, 0)); /* sticky */
    state_r_init(&r, b, sizeof(b));
    assert_null(state_get_span(&r, SIZE_MAX));
    assert_int_equal(state_r_done(&r), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(grows_past_initial_buffer),
        cmocka_unit_test(short_input_is_sticky),
        cmocka_unit_test(trailing_bytes_and_fail),
        cmocka_unit_test(span_points_into_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
