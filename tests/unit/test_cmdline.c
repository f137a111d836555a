#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arch/cmdline.h"

static void builds_with_single_spaces(void **state)
{
    (void)state;
    struct cmdline cl;
    cmdline_init(&cl);
    assert_string_equal(cl.buf, "");
    assert_int_equal(cmdline_append(&cl, "  console=ttyS0 "), 0);
    assert_int_equal(cmdline_append(&cl, ""), 0);
    assert_int_equal(cmdline_append(&cl, "   "), 0);
    assert_int_equal(cmdline_append(&cl, "reboot=k panic=-1"), 0);
    assert_int_equal(
        cmdline_appendf(&cl, "virtio_mmio.device=4K@0x%x:%d", 0xd0000000, 5),
        0);
    assert_string_equal(cl.buf, "console=ttyS0 reboot=k panic=-1 "
                                "virtio_mmio.device=4K@0xd0000000:5");
    assert_int_equal(cl.len, strlen(cl.buf));
}

static void refuses_overflow_without_truncating(void **state)
{
    (void)state;
    struct cmdline cl;
    cmdline_init(&cl);
    char word[1000];
    memset(word, 'a', sizeof(word) - 1);
    word[sizeof(word) - 1] = 0;
    int n = 0;
    while (cmdline_append(&cl, word) == 0)
        n++;
    assert_int_equal(n, 4); /* 4 * 1000 - 1 + 3 spaces + NUL <= 4096 */
    char before[CMDLINE_BUF_MAX];
    memcpy(before, cl.buf, sizeof(before));
    size_t len = cl.len;
    assert_int_equal(cmdline_append(&cl, word), -ENOSPC);
    assert_int_equal(cl.len, len);
    assert_memory_equal(cl.buf, before, len + 1);
    /* Exactly filling the buffer works; one byte more does not. */
    size_t room = CMDLINE_BUF_MAX - 1 - cl.len - 1;
    char fill[CMDLINE_BUF_MAX];
    memset(fill, 'b', room + 1);
    fill[room + 1] = 0;
    assert_int_equal(cmdline_append(&cl, fill), -ENOSPC);
    fill[room] = 0;
    assert_int_equal(cmdline_append(&cl, fill), 0);
    assert_int_equal(cl.len, CMDLINE_BUF_MAX - 1);
    assert_int_equal(cl.buf[CMDLINE_BUF_MAX - 1], 0);
    assert_int_equal(cmdline_append(&cl, "x"), -ENOSPC);
}

static void huge_and_formatted_overflow(void **state)
{
    (void)state;
    struct cmdline cl;
    cmdline_init(&cl);
    static char huge[CMDLINE_BUF_MAX * 3];
    memset(huge, 'c', sizeof(huge) - 1);
    assert_int_equal(cmdline_append(&cl, huge), -ENOSPC);
    assert_int_equal(cmdline_appendf(&cl, "%s", huge), -ENOSPC);
    assert_int_equal(cl.len, 0);
}

static void refuses_control_characters(void **state)
{
    (void)state;
    struct cmdline cl;
    cmdline_init(&cl);
    assert_int_equal(cmdline_append(&cl, "a\nb"), -EINVAL);
    assert_int_equal(cmdline_append(&cl, "a\rb"), -EINVAL);
    assert_int_equal(cmdline_append(&cl, "a\x7f"), -EINVAL);
    assert_int_equal(cl.len, 0);
}

static void finds_words(void **state)
{
    (void)state;
    struct cmdline cl;
    cmdline_init(&cl);
    assert_int_equal(cmdline_append(&cl, "quiet console=ttyS0 xconsole=1"), 0);
    assert_true(cmdline_has(&cl, "console"));
    assert_true(cmdline_has(&cl, "quiet"));
    assert_false(cmdline_has(&cl, "quie"));
    assert_false(cmdline_has(&cl, "consol"));
    assert_false(cmdline_has(&cl, "panic"));
    assert_false(cmdline_has(&cl, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builds_with_single_spaces),
        cmocka_unit_test(refuses_overflow_without_truncating),
        cmocka_unit_test(huge_and_formatted_overflow),
        cmocka_unit_test(refuses_control_characters),
        cmocka_unit_test(finds_words),
    };
    return cmocka_run_group_tests_name("cmdline", tests, NULL, NULL);
}
