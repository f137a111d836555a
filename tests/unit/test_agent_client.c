/* agent_client against the real agent core (forked, on a socketpair) and
 * against a fake agent that sends hostile or early-ending streams. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-agent/agent.h"
#include "protocol/msg.h"
#include "session/agent_client.h"
#include "core/evloop.h"
#include "tests/unit/agent_fixture.h"

struct t {
    struct evloop loop;
    struct agent_client c;
    int peer;                   /* the agent's end */
    struct agent_fixture agent; /* the real agent core, when it serves */
    bool hello, closed, run_over;
    int nhellos;
    int close_err;
    struct msg_buf out[2][3];
    int nexits;
    struct msg_exit last_exit;
    int nerrors;
    uint32_t last_error;
};

static void on_hello(void *o, const struct agent_hello *h)
{
    struct t *t = o;
    (void)h;
    t->hello = true;
    t->nhellos++;
    evloop_stop(&t->loop);
}

static void on_output(void *o, const struct msg_output *out)
{
    struct t *t = o;
    assert_true(out->phase <= 1 && out->stream >= 1 && out->stream <= 2);
    msg_buf_append(&t->out[out->phase][out->stream], out->data.p,
                   out->data.len);
}

static void on_exit_msg(void *o, const struct msg_exit *e)
{
    struct t *t = o;
    t->nexits++;
    t->last_exit = *e;
    if (e->status & MSG_EXIT_FINAL) {
        t->run_over = true;
        evloop_stop(&t->loop);
    }
}

static void on_error(void *o, const struct msg_error *e)
{
    struct t *t = o;
    t->nerrors++;
    t->last_error = e->code;
    t->run_over = true;
    evloop_stop(&t->loop);
}

static void on_closed(void *o, int err)
{
    struct t *t = o;
    t->closed = true;
    t->close_err = err;
    evloop_stop(&t->loop);
}

static const struct agent_client_ops ops = {
    .hello = on_hello,
    .output = on_output,
    .exit = on_exit_msg,
    .error = on_error,
    .closed = on_closed,
};

/* evloop_stop is final for a loop; the test restarts it between waits. */
static int pump(struct t *t, int ms)
{
    uint64_t v;
    t->loop.stopping = 0;
    ssize_t n = read(t->loop.stop_fd, &v, sizeof(v));
    (void)n;
    return evloop_run(&t->loop, ms);
}

/* A test's state with its loop, and the two ends of its channel in sv. */
static struct t *new_t(int sv[2])
{
    struct t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 3; s++)
            msg_buf_init(&t->out[p][s]);
    assert_int_equal(evloop_init(&t->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return t;
}

static struct t *setup_pair(void)
{
    int sv[2];
    struct t *t = new_t(sv);
    assert_int_equal(agent_client_init(&t->c, &t->loop, sv[0], &ops, t), 0);
    t->peer = sv[1];
    return t;
}

#define DEFAULT_CONF "LANG=sh\nTOOLCHAIN=dash\nSOURCE=main.sh\nRUN=sh main.sh\n"

/* Reads the peer end until one whole SLIP frame went by: the agent's
 * first HELLO, which a client attached later never sees. */
static void swallow_frame(int fd)
{
    int ends = 0;
    while (ends < 2) {
        uint8_t b;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(read(fd, &b, 1), 1);
        ends += b == SLIP_END;
    }
}

/* The real agent core in a child, serving the peer end, with lang.conf
 * conf. With late_client, the client is attached only after the agent's
 * HELLO went by, as for a VM restored from a snapshot. */
static struct t *setup_agent_conf(const char *conf, bool late_client)
{
    int sv[2];
    struct t *t = new_t(sv);
    assert_int_equal(agent_fixture_init(&t->agent, "test_agent_client", conf),
                     0);
    assert_int_equal(agent_fixture_start(&t->agent, sv[1]), 0);
    t->peer = -1; /* the agent's now */
    if (late_client)
        swallow_frame(sv[0]);
    assert_int_equal(agent_client_init(&t->c, &t->loop, sv[0], &ops, t), 0);
    if (late_client)
        return t;
    assert_int_equal(pump(t, 10000), 0);
    assert_true(t->hello);
    assert_string_equal(t->c.hello.lang, "sh");
    assert_string_equal(t->c.hello.source, "main.sh");
    return t;
}

static struct t *setup_agent(void)
{
    return setup_agent_conf(DEFAULT_CONF, false);
}

static void teardown(struct t *t)
{
    int fd = t->c.fd;
    agent_client_free(&t->c);
    close(fd);
    if (t->peer >= 0)
        close(t->peer);
    /* The host end is closed: the agent ends by itself. */
    agent_fixture_stop(&t->agent, NULL);
    assert_int_equal(agent_fixture_free(&t->agent), 0);
    evloop_free(&t->loop);
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 3; s++)
            msg_buf_free(&t->out[p][s]);
    free(t);
}

static void run_until_over(struct t *t)
{
    t->run_over = false;
    while (!t->run_over && !t->closed)
        assert_int_equal(pump(t, 20000), 0);
}

static void assert_buf(struct msg_buf *b, const char *s)
{
    assert_int_equal(b->len, strlen(s));
    assert_memory_equal(b->data, s, b->len);
}

static void test_exec_argv_output_and_status(void **state)
{
    (void)state;
    struct t *t = setup_agent();
    static const char *const argv[] = {"sh", "-c",
                                       "echo out; echo err >&2; exit 7", NULL};
    static const char *const none[] = {NULL};
    struct agent_request req = {.run_argv = argv, .build_argv = none};
    uint32_t id = 0;
    assert_int_equal(agent_client_run(&t->c, &req, &id), 0);
    assert_int_not_equal(id, 0);
    /* One RUN at a time. */
    assert_int_equal(agent_client_run(&t->c, &req, NULL), -EBUSY);
    run_until_over(t);
    assert_int_equal(t->nexits, 1);
    assert_true(t->last_exit.exited);
    assert_int_equal(t->last_exit.code, 7);
    assert_int_equal(t->last_exit.phase, MSG_PHASE_RUN);
    assert_buf(&t->out[MSG_PHASE_RUN][MSG_STREAM_STDOUT], "out\n");
    assert_buf(&t->out[MSG_PHASE_RUN][MSG_STREAM_STDERR], "err\n");
    teardown(t);
}

static void test_file_stdin_and_second_run(void **state)
{
    (void)state;
    struct t *t = setup_agent();
    static const char src[] = "read x; echo \"got $x\"\n";
    struct agent_file f = {
        .name = "main.sh", .data = src, .len = sizeof(src) - 1};
    struct agent_request req = {
        .files = &f, .nfiles = 1, .stdin_data = "abc\n", .stdin_len = 4};
    assert_int_equal(agent_client_run(&t->c, &req, NULL), 0);
    run_until_over(t);
    assert_true(t->last_exit.exited);
    assert_int_equal(t->last_exit.code, 0);
    assert_buf(&t->out[1][1], "got abc\n");

    /* Same VM, next case: streamed stdin, reusing the directory. */
    msg_buf_reset(&t->out[1][1]);
    struct agent_request again = {.flags = MSG_RUN_REUSE_WORKDIR |
                                           MSG_RUN_SKIP_BUILD,
                                  .stdin_open = true};
    assert_int_equal(agent_client_run(&t->c, &again, NULL), 0);
    assert_int_equal(agent_client_stdin(&t->c, "x", 1, false), 0);
    assert_int_equal(agent_client_stdin(&t->c, "yz\n", 3, true), 0);
    run_until_over(t);
    assert_int_equal(t->last_exit.code, 0);
    assert_buf(&t->out[1][1], "got xyz\n");
    /* No RUN active: stdin has nowhere to go. */
    assert_int_equal(agent_client_stdin(&t->c, "q", 1, true), -ENOENT);
    teardown(t);
}

static void test_signal_and_timeout(void **state)
{
    (void)state;
    struct t *t = setup_agent();
    static const char *const kill_self[] = {"sh", "-c", "kill -9 $$", NULL};
    struct agent_request req = {.run_argv = kill_self};
    assert_int_equal(agent_client_run(&t->c, &req, NULL), 0);
    run_until_over(t);
    assert_true(t->last_exit.signaled);
    assert_int_equal(t->last_exit.signal, SIGKILL);

    static const char *const loop[] = {"sh", "-c", "while :; do :; done", NULL};
    struct agent_request slow = {.run_argv = loop, .limits = {.wall_ms = 300}};
    assert_int_equal(agent_client_run(&t->c, &slow, NULL), 0);
    run_until_over(t);
    assert_true(t->last_exit.status & MSG_EXIT_TIMED_OUT);
    teardown(t);
}

/* One RUN carries the unnamed source, the build under its own limit and
 * the run under another: the build sleeps past the run limit and passes,
 * the agent names the file after SOURCE, stdin reaches the program. */
static void test_one_run_build_and_run(void **state)
{
    (void)state;
    struct t *t = setup_agent_conf(
        "LANG=sh\nSOURCE=main.sh\n"
        "BUILD=sh -c 'sleep 0.5; echo compiled; cp main.sh prog'\n"
        "RUN=sh prog\n",
        false);
    static const char src[] = "read x; echo \"got $x\"\n";
    struct agent_file f = {.data = src, .len = sizeof(src) - 1};
    struct agent_request req = {
        .files = &f,
        .nfiles = 1,
        .stdin_data = "abc\n",
        .stdin_len = 4,
        .limits = {.wall_ms = 300},
        .has_build_limits = true,
        .build_limits = {.wall_ms = 5000},
    };
    uint32_t id;
    assert_int_equal(agent_client_run(&t->c, &req, &id), 0);
    run_until_over(t);
    assert_int_equal(t->nerrors, 0);
    assert_int_equal(t->nexits, 2); /* the build's, then the run's */
    assert_int_equal(t->last_exit.phase, MSG_PHASE_RUN);
    assert_true(t->last_exit.exited);
    assert_int_equal(t->last_exit.code, 0);
    assert_int_equal(t->last_exit.status, MSG_EXIT_FINAL);
    assert_buf(&t->out[MSG_PHASE_BUILD][MSG_STREAM_STDOUT], "compiled\n");
    assert_buf(&t->out[MSG_PHASE_RUN][MSG_STREAM_STDOUT], "got abc\n");
    assert_int_equal(t->c.next_id, id + 1); /* no second request went */

    /* The build limit is the build's: 200 ms stops that build. */
    t->nexits = 0;
    req.build_limits.wall_ms = 200;
    req.limits.wall_ms = 5000;
    assert_int_equal(agent_client_run(&t->c, &req, NULL), 0);
    run_until_over(t);
    assert_int_equal(t->nexits, 1);
    assert_int_equal(t->last_exit.phase, MSG_PHASE_BUILD);
    assert_true(t->last_exit.status & MSG_EXIT_TIMED_OUT);
    teardown(t);
}

/* A client that missed the agent's HELLO (a VM restored from a snapshot)
 * asks for it again; a client that had one gets a second, and RUNs go on
 * either way. */
static void test_reannounce(void **state)
{
    (void)state;
    struct t *t = setup_agent_conf(DEFAULT_CONF, true);
    assert_false(t->c.have_hello);
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     -EAGAIN);
    uint32_t id = 0;
    assert_int_equal(agent_client_announce(&t->c, NULL, &id), 0);
    assert_int_not_equal(id, 0);
    while (!t->hello)
        assert_int_equal(pump(t, 5000), 0);
    assert_int_equal(t->nhellos, 1);
    assert_string_equal(t->c.hello.lang, "sh");
    assert_string_equal(t->c.hello.source, "main.sh");

    static const char src[] = "echo restored\n";
    struct agent_file f = {.data = src, .len = sizeof(src) - 1};
    struct agent_request req = {.files = &f, .nfiles = 1};
    assert_int_equal(agent_client_run(&t->c, &req, NULL), 0);
    run_until_over(t);
    assert_int_equal(t->last_exit.code, 0);
    assert_buf(&t->out[1][1], "restored\n");

    /* Again, with HELLO already known: replaced, reported once more. */
    memset(t->c.hello.lang, 0, sizeof(t->c.hello.lang));
    assert_int_equal(agent_client_announce(&t->c, NULL, NULL), 0);
    while (t->nhellos < 2)
        assert_int_equal(pump(t, 5000), 0);
    assert_int_equal(t->c.hellos, 2);
    assert_string_equal(t->c.hello.lang, "sh");
    teardown(t);
}

static void test_shutdown_ends_agent(void **state)
{
    (void)state;
    struct t *t = setup_agent();
    assert_int_equal(agent_client_shutdown(&t->c), 0);
    while (!t->closed)
        assert_int_equal(pump(t, 5000), 0);
    assert_int_equal(t->close_err, -EPIPE);
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     -EPIPE);
    int st;
    assert_int_equal(agent_fixture_stop(&t->agent, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), AGENT_END_SHUTDOWN);
    teardown(t);
}

/* ---- fake agent: the test writes the agent's bytes itself ------------- */

static void peer_send(struct t *t, struct msg_buf *m)
{
    struct msg_buf wire;
    msg_buf_init(&wire);
    assert_int_equal(msg_slip_append(&wire, m->data, m->len), 0);
    assert_int_equal(write(t->peer, wire.data, wire.len), (ssize_t)wire.len);
    msg_buf_free(&wire);
    msg_buf_reset(m);
}

static void peer_hello(struct t *t)
{
    struct msg_buf m;
    msg_buf_init(&m);
    struct msg_hello h = {
        .lang = {(const uint8_t *)"x\ny", 3},
        .agent_version = {(const uint8_t *)"9", 1},
    };
    assert_int_equal(msg_build_hello(&m, 0, &h), 0);
    peer_send(t, &m);
    msg_buf_free(&m);
    assert_int_equal(pump(t, 2000), 0);
    assert_true(t->hello);
    /* Control characters from the guest do not reach a terminal. */
    assert_string_equal(t->c.hello.lang, "x?y");
}

struct sent_run {
    int n;
    uint32_t id;
    struct msg_run run; /* pointers cleared: only counts and values */
    uint32_t name_len[2], data_len[2];
    char run_argv[32];
};

static void got_run(void *opaque, const struct msg_view *v)
{
    struct sent_run *s = opaque;
    assert_int_equal(v->type, MSG_RUN);
    assert_int_equal(msg_decode_run(v, &s->run), 0);
    s->n++;
    s->id = v->id;
    for (size_t i = 0; i < s->run.nfiles && i < 2; i++) {
        s->name_len[i] = s->run.files[i].name.len;
        s->data_len[i] = s->run.files[i].data.len;
    }
    const char *argv[4];
    assert_int_equal(msg_strlist_split(&s->run.run_argv, argv, 4), 2);
    snprintf(s->run_argv, sizeof(s->run_argv), "%s %s", argv[0], argv[1]);
}

/* What the client puts on the wire decodes with the agent's decoder, field
 * for field: the same encoder as the tests of protocol/msg_build.c. */
static void test_run_encoding_decodes(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    peer_hello(t);
    static const char *const argv[] = {"./prog", "-v", NULL};
    static const char *const none[] = {NULL};
    struct agent_file files[2] = {
        {.data = "src", .len = 3},
        {.name = "in.txt", .data = "", .len = 0, .mode = 0600},
    };
    struct agent_request req = {
        .files = files,
        .nfiles = 2,
        .build_argv = none,
        .run_argv = argv,
        .stdin_data = "x",
        .stdin_len = 1,
        .stdin_open = true,
        .flags = MSG_RUN_REUSE_WORKDIR | 0x8000, /* unknown bit dropped */
        .limits = {.wall_ms = 10000, .mem_bytes = 1 << 28},
        .has_build_limits = true,
        .build_limits = {.wall_ms = 60000, .max_procs = 9},
    };
    /* More files than an agent takes never leave the client. */
    static struct agent_file many[MSG_MAX_FILES + 1];
    struct agent_request big = {.files = many, .nfiles = MSG_MAX_FILES + 1};
    assert_int_equal(agent_client_run(&t->c, &big, NULL), -E2BIG);
    uint32_t id;
    assert_int_equal(agent_client_run(&t->c, &req, &id), 0);
    struct sent_run sent = {0};
    struct msg_reader rd;
    assert_int_equal(msg_reader_init(&rd, got_run, NULL, &sent), 0);
    while (sent.n == 0) {
        uint8_t buf[4096];
        ssize_t n = read(t->peer, buf, sizeof(buf));
        assert_true(n > 0);
        msg_reader_feed(&rd, buf, (size_t)n);
    }
    msg_reader_free(&rd);
    assert_int_equal(sent.n, 1);
    assert_int_equal(sent.id, id);
    struct msg_run *r = &sent.run;
    assert_int_equal(r->flags, MSG_RUN_REUSE_WORKDIR | MSG_RUN_STDIN_OPEN);
    assert_int_equal(r->nfiles, 2);
    assert_int_equal(sent.name_len[0], 0);
    assert_int_equal(sent.data_len[0], 3);
    assert_int_equal(sent.name_len[1], 6);
    assert_int_equal(r->files[1].mode, 0600);
    assert_true(r->build_argv.present);
    assert_int_equal(r->build_argv.len, 0);
    assert_string_equal(sent.run_argv, "./prog -v");
    assert_false(r->env.present);
    assert_int_equal(r->stdin_data.len, 1);
    assert_int_equal(r->limits.wall_ms, 10000);
    assert_int_equal(r->limits.mem_bytes, 1 << 28);
    assert_true(r->has_build_limits);
    assert_int_equal(r->build_limits.wall_ms, 60000);
    assert_int_equal(r->build_limits.max_procs, 9);
    teardown(t);
}

/* A HELLO answering ANNOUNCE leaves the RUN alone; one with id 0 (an
 * agent that started over) ends it as lost. */
static void test_second_hello_during_run(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    peer_hello(t);
    assert_int_equal(t->nhellos, 1);
    uint32_t id, aid;
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, &id),
                     0);
    assert_int_equal(agent_client_announce(&t->c, NULL, &aid), 0);
    assert_int_not_equal(aid, id);
    struct msg_buf m;
    msg_buf_init(&m);
    struct msg_hello h = {.lang = {(const uint8_t *)"go", 2}};
    assert_int_equal(msg_build_hello(&m, aid, &h), 0);
    peer_send(t, &m);
    while (t->nhellos < 2)
        assert_int_equal(pump(t, 2000), 0);
    assert_string_equal(t->c.hello.lang, "go");
    assert_true(t->c.run_active);
    assert_int_equal(t->nerrors, 0);

    assert_int_equal(msg_build_hello(&m, 0, &h), 0);
    peer_send(t, &m);
    while (t->nhellos < 3)
        assert_int_equal(pump(t, 2000), 0);
    assert_false(t->c.run_active);
    assert_int_equal(t->nerrors, 1);
    assert_int_equal(t->last_error, MSG_ERR_INTERNAL);
    /* The new agent takes RUNs; the lost one's EXIT would be stale. */
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     0);
    assert_int_equal(
        msg_build_exit(&m, id, &(struct msg_exit){.status = MSG_EXIT_FINAL}),
        0);
    peer_send(t, &m);
    assert_int_equal(pump(t, 200), -ETIMEDOUT); /* nothing to report */
    assert_int_equal(t->nexits, 0);
    msg_buf_free(&m);
    teardown(t);
}

static void test_run_before_hello(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     -EAGAIN);
    teardown(t);
}

static void test_garbage_stale_and_error(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    peer_hello(t);
    uint32_t id;
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, &id),
                     0);
    /* Line noise, a frame with a broken CRC, output for another id and a
     * host-bound type: all counted, none acted upon. */
    static const uint8_t noise[] = {0xc0, 1, 2, 3, 0xdb, 0x00, 0xc0};
    assert_int_equal(write(t->peer, noise, sizeof(noise)), sizeof(noise));
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_output(&m, id, 1, 1, "ok", 2), 0);
    m.data[m.len - 1] ^= 0xff;
    peer_send(t, &m);
    assert_int_equal(msg_build_output(&m, id + 5, 1, 1, "stale", 5), 0);
    peer_send(t, &m);
    assert_int_equal(msg_build_shutdown(&m, id), 0);
    peer_send(t, &m);
    assert_int_equal(msg_build_output(&m, id, 1, 2, "real", 4), 0);
    peer_send(t, &m);
    assert_int_equal(msg_build_error(&m, id, MSG_ERR_NO_COMMAND, "none"), 0);
    peer_send(t, &m);
    run_until_over(t);
    assert_int_equal(t->nerrors, 1);
    assert_int_equal(t->last_error, MSG_ERR_NO_COMMAND);
    assert_buf(&t->out[1][2], "real");
    assert_int_equal(t->out[1][1].len, 0);
    assert_true(t->c.dropped >= 4);
    /* The RUN is over: a new one may start. */
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     0);
    msg_buf_free(&m);
    teardown(t);
}

static void test_peer_closes_mid_run(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    peer_hello(t);
    assert_int_equal(agent_client_run(&t->c, &(struct agent_request){0}, NULL),
                     0);
    close(t->peer);
    t->peer = -1;
    while (!t->closed)
        assert_int_equal(pump(t, 2000), 0);
    assert_int_equal(t->nexits, 0);
    teardown(t);
}

/* A peer that does not read: writes queue up without blocking the loop,
 * and stdin beyond the cap is refused. */
static void test_backpressure(void **state)
{
    (void)state;
    struct t *t = setup_pair();
    peer_hello(t);
    struct agent_request req = {.stdin_open = true};
    assert_int_equal(agent_client_run(&t->c, &req, NULL), 0);
    size_t n = 1 << 20;
    char *big = calloc(1, n);
    assert_non_null(big);
    int ret = 0;
    for (int i = 0; i < 64 && ret == 0; i++)
        ret = agent_client_stdin(&t->c, big, n, false);
    assert_int_equal(ret, -ENOBUFS);
    assert_true(agent_client_queued(&t->c) > AGENT_CLIENT_MAX_QUEUED);
    free(big);
    teardown(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_argv_output_and_status),
        cmocka_unit_test(test_file_stdin_and_second_run),
        cmocka_unit_test(test_signal_and_timeout),
        cmocka_unit_test(test_one_run_build_and_run),
        cmocka_unit_test(test_reannounce),
        cmocka_unit_test(test_shutdown_ends_agent),
        cmocka_unit_test(test_run_encoding_decodes),
        cmocka_unit_test(test_second_hello_during_run),
        cmocka_unit_test(test_run_before_hello),
        cmocka_unit_test(test_garbage_stale_and_error),
        cmocka_unit_test(test_peer_closes_mid_run),
        cmocka_unit_test(test_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
