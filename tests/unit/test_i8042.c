/* The i8042's reset line, and its (empty) saved state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "devices/i8042.h"
#include "core/state.h"

static void count_reset(void *opaque)
{
    (*(int *)opaque)++;
}

static void command_fe_resets(void **state)
{
    (void)state;
    int resets = 0;
    struct i8042 dev = {.reset = count_reset, .opaque = &resets};
    uint8_t v = 0xaa;
    i8042_bus_ops.write(&dev, I8042_DATA_OFFSET, &v, 1);
    v = I8042_CMD_RESET_CPU;
    i8042_bus_ops.write(&dev, I8042_DATA_OFFSET, &v, 1); /* data, not cmd */
    assert_int_equal(resets, 0);
    i8042_bus_ops.write(&dev, I8042_CMD_OFFSET, &v, 1);
    assert_int_equal(resets, 1);
}

static void snapshot_roundtrip_and_refusals(void **state)
{
    (void)state;
    int resets = 0;
    struct i8042 a = {.reset = count_reset, .opaque = &resets};
    struct state_w w;
    state_w_init(&w);
    assert_int_equal(i8042_save(&a, &w), 0);
    assert_int_equal(w.len, 4);

    struct i8042 b = {.reset = count_reset, .opaque = &resets};
    struct state_r r;
    state_r_init(&r, w.buf, w.len);
    assert_int_equal(i8042_restore(&b, &r), 0);
    /* The restored controller still resets the machine. */
    uint8_t v = I8042_CMD_RESET_CPU;
    i8042_bus_ops.write(&b, I8042_CMD_OFFSET, &v, 1);
    assert_int_equal(resets, 1);
    assert_ptr_equal(b.opaque, &resets);

    uint8_t p[5];
    memcpy(p, w.buf, 4);
    p[4] = 0;
    for (size_t len = 0; len <= sizeof(p); len++) {
        if (len == 4)
            continue;
        state_r_init(&r, p, len);
        assert_int_equal(i8042_restore(&b, &r), -EBADMSG);
    }
    p[0] ^= 0x03; /* another layout */
    state_r_init(&r, p, 4);
    assert_int_equal(i8042_restore(&b, &r), -EBADMSG);
    state_w_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(command_fe_resets),
        cmocka_unit_test(snapshot_roundtrip_and_refusals),
    };
    return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
