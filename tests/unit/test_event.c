/* Exit statuses and NDJSON events: session/event.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "session/event.h"

static void expect_text(struct msg_buf *b, const char *want)
{
    msg_buf_append(b, "", 1);
    assert_string_equal((const char *)b->data, want);
    msg_buf_reset(b);
}

static void test_exit_status(void **state)
{
    (void)state;
    struct msg_exit e = {.phase = MSG_PHASE_RUN,
                         .exited = true,
                         .code = 7,
                         .status = MSG_EXIT_FINAL};
    assert_int_equal(event_exit_status(&e), 7);
    e.code = 0;
    assert_int_equal(event_exit_status(&e), 0);
    e = (struct msg_exit){.phase = MSG_PHASE_RUN,
                          .signaled = true,
                          .signal = 9,
                          .status = MSG_EXIT_OOM_KILLED};
    assert_int_equal(event_exit_status(&e), 137);
    /* A time limit wins over the signal that enforced it. */
    e.status = MSG_EXIT_TIMED_OUT;
    assert_int_equal(event_exit_status(&e), RUNVM_EXIT_TIMEOUT);
    e = (struct msg_exit){.phase = MSG_PHASE_BUILD,
                          .exited = true,
                          .code = 1,
                          .status = MSG_EXIT_FINAL};
    assert_int_equal(event_exit_status(&e), RUNVM_EXIT_BUILD_FAILED);
    e.status |= MSG_EXIT_TIMED_OUT;
    assert_int_equal(event_exit_status(&e), RUNVM_EXIT_TIMEOUT);
    /* Neither exited nor signalled: the agent is confused. */
    e = (struct msg_exit){.phase = MSG_PHASE_RUN};
    assert_int_equal(event_exit_status(&e), RUNVM_EXIT_INFRA);
}

/* The one table for a VM that stopped without the agent's outcome. */
static void test_stop_status(void **state)
{
    (void)state;
    for (int ok = 0; ok < 2; ok++) {
        assert_int_equal(event_stop_status(VM_STOP_TIMEOUT, 0, ok), 124);
        assert_int_equal(event_stop_status(VM_STOP_SIGNAL, 15, ok), 143);
        assert_int_equal(event_stop_status(VM_STOP_SIGNAL, 2, ok), 130);
        /* The console escape: no signal, an end the user asked for. */
        assert_int_equal(event_stop_status(VM_STOP_SIGNAL, 0, ok), 0);
        assert_int_equal(event_stop_status(VM_STOP_ERROR, 0, ok), 125);
    }
    /* A guest that ended itself: an end for a bare boot or after PUT
     * /shutdown, a failure where a run was owed. */
    assert_int_equal(event_stop_status(VM_STOP_GUEST, 0, true), 0);
    assert_int_equal(event_stop_status(VM_STOP_GUEST, 0, false), 125);
}

static void test_json_string(void **state)
{
    (void)state;
    struct msg_buf b;
    msg_buf_init(&b);
    event_json_string(&b, "a\"b\\c\n\t\x01\x7f", 9);
    expect_text(&b, "\"a\\\"b\\\\c\\n\\t\\u0001\x7f\"");
    /* Valid UTF-8 passes; a stray byte, an overlong and a surrogate
     * become U+FFFD. */
    event_json_string(&b, "\xc3\xa9|\xff|\xc0\xaf|\xed\xa0\x80", 11);
    expect_text(&b,
                "\"\xc3\xa9|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\"");
    msg_buf_free(&b);
}

static void test_output_events(void **state)
{
    (void)state;
    struct msg_buf b;
    msg_buf_init(&b);
    struct msg_output o = {.phase = MSG_PHASE_RUN,
                           .stream = MSG_STREAM_STDOUT,
                           .data = {(const uint8_t *)"hi\n", 3}};
    event_output(&b, &o);
    expect_text(&b, "{\"type\":\"output\",\"phase\":\"run\",\"stream\":"
                    "\"stdout\",\"data\":\"hi\\n\"}\n");
    /* Binary bytes travel as base64, intact. */
    o = (struct msg_output){.phase = MSG_PHASE_BUILD,
                            .stream = MSG_STREAM_STDERR,
                            .data = {(const uint8_t *)"\xff\x00\x01\x02", 4}};
    event_output(&b, &o);
    expect_text(&b, "{\"type\":\"output\",\"phase\":\"build\",\"stream\":"
                    "\"stderr\",\"data_base64\":\"/wABAg==\"}\n");
    msg_buf_free(&b);
}

static void test_exit_events(void **state)
{
    (void)state;
    struct msg_buf b;
    msg_buf_init(&b);
    struct msg_exit e = {.phase = MSG_PHASE_RUN,
                         .exited = true,
                         .code = 3,
                         .wall_ms = 12,
                         .cpu_ms = 5,
                         .peak_mem = 4096,
                         .status = MSG_EXIT_FINAL};
    event_exit(&b, &e);
    expect_text(&b, "{\"type\":\"exit\",\"phase\":\"run\",\"exit_code\":3,"
                    "\"signal\":null,\"wall_ms\":12,\"cpu_ms\":5,"
                    "\"peak_memory_bytes\":4096,\"timed_out\":false,"
                    "\"output_truncated\":false,\"oom_killed\":false,"
                    "\"status\":3}\n");
    e = (struct msg_exit){.phase = MSG_PHASE_BUILD, .exited = true};
    event_exit(&b, &e);
    expect_text(&b, "{\"type\":\"step\",\"phase\":\"build\",\"exit_code\":0,"
                    "\"signal\":null,\"wall_ms\":0,\"cpu_ms\":0,"
                    "\"peak_memory_bytes\":0,\"timed_out\":false,"
                    "\"output_truncated\":false,\"oom_killed\":false}\n");
    event_failure(&b, 125, "agent \"gone\"");
    expect_text(&b, "{\"type\":\"exit\",\"status\":125,\"error\":"
                    "\"agent \\\"gone\\\"\"}\n");
    msg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_stop_status),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_output_events),
        cmocka_unit_test(test_exit_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
