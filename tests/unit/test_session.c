/* The session state machine (session/session.c) driven by the real agent
 * core, forked on a socketpair, and by a fake agent that breaks off: every
 * run ends exactly once, with the status and reason the front ends
 * report. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/evloop.h"
#include "protocol/msg.h"
#include "session/event.h"
#include "session/session.h"
#include "tests/unit/agent_fixture.h"

struct t {
    struct evloop loop;
    struct session s;
    int fd, peer;
    struct agent_fixture agent; /* the real agent core, when it serves */
    int nready, ndone, nclosed, nexits, noverdue;
    uint32_t ready_id; /* the HELLO id that made it ready */
    int status;
    char why[256];
    struct msg_buf out;
};

static void on_ready(void *o, const struct agent_hello *h)
{
    struct t *t = o;
    t->ready_id = h->id;
    t->nready++;
    evloop_stop(&t->loop);
}

static void on_output(void *o, const struct msg_output *out)
{
    struct t *t = o;
    msg_buf_append(&t->out, out->data.p, out->data.len);
}

static void on_exit_msg(void *o, const struct msg_exit *e)
{
    struct t *t = o;
    (void)e;
    t->nexits++;
}

static void on_done(void *o, int status, const char *why)
{
    struct t *t = o;
    t->ndone++;
    t->status = status;
    snprintf(t->why, sizeof(t->why), "%s", why ? why : "");
    evloop_stop(&t->loop);
}

static void on_closed(void *o, int err)
{
    struct t *t = o;
    (void)err;
    t->nclosed++;
    evloop_stop(&t->loop);
}

static void on_overdue(void *o)
{
    struct t *t = o;
    t->noverdue++;
    evloop_stop(&t->loop);
}

static const struct session_sink sink = {
    .ready = on_ready,
    .output = on_output,
    .exit = on_exit_msg,
    .done = on_done,
    .closed = on_closed,
    .power_off_overdue = on_overdue,
};

/* evloop_stop is final for a loop; the test restarts it between waits. */
static void pump(struct t *t)
{
    uint64_t v;
    t->loop.stopping = 0;
    ssize_t n = read(t->loop.stop_fd, &v, sizeof(v));
    (void)n;
    assert_int_equal(evloop_run(&t->loop, 20000), 0);
}

#define CONF "LANG=sh\nTOOLCHAIN=dash\nSOURCE=main.sh\nRUN=sh main.sh\n"

/* With conf: the real agent core in a child; NULL: a bare peer the test
 * plays the agent on. */
static struct t *setup_version(const char *conf, const char *lang,
                               const char *version)
{
    struct t *t = calloc(1, sizeof(*t));
    int sv[2];
    assert_non_null(t);
    msg_buf_init(&t->out);
    assert_int_equal(evloop_init(&t->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t->fd = sv[0];
    t->peer = sv[1];
    if (conf) {
        assert_int_equal(agent_fixture_init(&t->agent, "test_session", conf),
                         0);
        assert_int_equal(agent_fixture_start(&t->agent, t->peer), 0);
        t->peer = -1; /* the agent's now */
    }
    struct session_expect x = {.lang = lang, .version = version};
    assert_int_equal(session_init(&t->s, &t->loop, t->fd, &x, &sink, t), 0);
    assert_int_equal(t->s.state, SESSION_BOOTING);
    return t;
}

static struct t *setup(const char *conf, const char *lang)
{
    return setup_version(conf, lang, NULL);
}

static void teardown(struct t *t)
{
    session_free(&t->s);
    close(t->fd);
    if (t->peer >= 0)
        close(t->peer);
    /* The host end is closed: the agent ends by itself, and with it a
     * step still running. */
    agent_fixture_stop(&t->agent, NULL);
    assert_int_equal(agent_fixture_free(&t->agent), 0);
    evloop_free(&t->loop);
    msg_buf_free(&t->out);
    free(t);
}

static const char *const none[] = {NULL};

static void run_until_done(struct t *t)
{
    int before = t->ndone;
    while (t->ndone == before && t->nclosed == 0)
        pump(t);
}

static void ready_run_done_and_again(void **state)
{
    (void)state;
    struct t *t = setup(CONF, "sh");
    static const char *const argv[] = {"sh", "-c", "echo out; exit 3", NULL};
    struct agent_request req = {.run_argv = argv, .build_argv = none};
    /* Before HELLO nothing goes out. */
    assert_int_equal(session_run(&t->s, &req), -EAGAIN);
    pump(t);
    assert_int_equal(t->nready, 1);
    assert_int_equal(t->s.state, SESSION_READY);
    assert_string_equal(session_hello(&t->s)->source, "main.sh");
    assert_int_equal(session_run(&t->s, &req), 0);
    assert_int_equal(t->s.state, SESSION_RUNNING);
    assert_int_equal(session_run(&t->s, &req), -EBUSY);
    run_until_done(t);
    assert_int_equal(t->ndone, 1);
    assert_int_equal(t->status, 3);
    assert_string_equal(t->why, "");
    assert_int_equal(t->nexits, 1);
    assert_int_equal(t->out.len, 4);
    assert_memory_equal(t->out.data, "out\n", 4);
    assert_int_equal(t->s.state, SESSION_READY);
    /* The next run of the same session. */
    static const char *const argv2[] = {"sh", "-c", "kill -9 $$", NULL};
    req.run_argv = argv2;
    assert_int_equal(session_run(&t->s, &req), 0);
    run_until_done(t);
    assert_int_equal(t->ndone, 2);
    assert_int_equal(t->status, RUNVM_EXIT_SIGNAL_BASE + 9);
    assert_int_equal(t->s.runs, 2);
    teardown(t);
}

static void build_failure_and_snippet(void **state)
{
    (void)state;
    struct t *t = setup("LANG=sh\nSOURCE=main.sh\nBUILD=sh -n main.sh\n"
                        "RUN=sh main.sh\n",
                        "sh");
    pump(t);
    /* A nameless file is the image's SOURCE; the build checks it. */
    struct agent_file f = {.data = "if then\n", .len = 8};
    struct agent_request req = {.files = &f, .nfiles = 1};
    assert_int_equal(session_run(&t->s, &req), 0);
    run_until_done(t);
    assert_int_equal(t->status, RUNVM_EXIT_BUILD_FAILED);
    assert_int_equal(t->nexits, 1);
    f = (struct agent_file){.data = "echo fine\n", .len = 10};
    assert_int_equal(session_run(&t->s, &req), 0);
    run_until_done(t);
    assert_int_equal(t->status, 0);
    assert_int_equal(t->nexits, 3); /* the build's step, then the run's */
    teardown(t);
}

static void agent_error_ends_the_run(void **state)
{
    (void)state;
    /* No SOURCE: a nameless file is refused with an ERROR. */
    struct t *t = setup("LANG=sh\nRUN=sh main.sh\n", "sh");
    pump(t);
    struct agent_file f = {.data = "x", .len = 1};
    struct agent_request req = {.files = &f, .nfiles = 1};
    assert_int_equal(session_run(&t->s, &req), 0);
    run_until_done(t);
    assert_int_equal(t->ndone, 1);
    assert_int_equal(t->status, RUNVM_EXIT_INFRA);
    assert_non_null(strstr(t->why, "agent error 3"));
    assert_int_equal(t->s.state, SESSION_READY);
    teardown(t);
}

static void wrong_language_fails_once(void **state)
{
    (void)state;
    struct t *t = setup(CONF, "go");
    run_until_done(t);
    assert_int_equal(t->nready, 0);
    assert_int_equal(t->ndone, 1);
    assert_int_equal(t->status, RUNVM_EXIT_INFRA);
    assert_non_null(strstr(t->why, "serves language \"sh\", not \"go\""));
    assert_int_equal(t->s.state, SESSION_FAILED);
    struct agent_request req = {.run_argv = none};
    assert_int_equal(session_run(&t->s, &req), -EPIPE);
    teardown(t);
}

/* The test, playing the agent, sends the message m holds and frees m. */
static void peer_send(struct t *t, struct msg_buf *m)
{
    struct msg_buf wire;
    msg_buf_init(&wire);
    assert_int_equal(msg_slip_append(&wire, m->data, m->len), 0);
    assert_int_equal(write(t->peer, wire.data, wire.len), (ssize_t)wire.len);
    msg_buf_free(&wire);
    msg_buf_free(m);
}

/* The test plays an agent of version version, with toolchain, saying
 * HELLO. */
static void peer_hello_toolchain(struct t *t, const char *version,
                                 const char *toolchain)
{
    struct msg_buf m;
    msg_buf_init(&m);
    struct msg_hello h = {
        .lang = {(const uint8_t *)"sh", 2},
        .agent_version = {(const uint8_t *)version, (uint32_t)strlen(version)},
        .toolchain = {(const uint8_t *)toolchain, (uint32_t)strlen(toolchain)},
    };
    assert_int_equal(msg_build_hello(&m, 0, &h), 0);
    peer_send(t, &m);
}

static void peer_hello_version(struct t *t, const char *version)
{
    peer_hello_toolchain(t, version, "");
}

static void peer_hello(struct t *t)
{
    peer_hello_version(t, MSG_AGENT_MIN_VERSION);
}

/* What the test's peer read of the session's ANNOUNCE. */
struct announce_seen {
    int n;
    uint32_t id;
    uint8_t entropy[MSG_MAX_ENTROPY];
    uint32_t entropy_len;
    bool has_realtime;
    uint64_t realtime_ns;
};

static void on_peer_msg(void *opaque, const struct msg_view *v)
{
    struct announce_seen *a = opaque;
    struct msg_announce an;
    assert_int_equal(msg_decode_announce(v, &an), 0);
    a->n++;
    a->id = v->id;
    a->entropy_len = an.entropy.len;
    memcpy(a->entropy, an.entropy.p, an.entropy.len);
    a->has_realtime = an.has_realtime;
    a->realtime_ns = an.realtime_ns;
}

/* Reads the one ANNOUNCE session_resume sent to the peer. */
static void peer_read_announce(struct t *t, struct announce_seen *a)
{
    struct msg_reader r;
    uint8_t buf[4096];
    memset(a, 0, sizeof(*a));
    assert_int_equal(msg_reader_init(&r, on_peer_msg, NULL, a), 0);
    ssize_t n = read(t->peer, buf, sizeof(buf));
    assert_true(n > 0);
    msg_reader_feed(&r, buf, (size_t)n);
    msg_reader_free(&r);
    assert_int_equal(a->n, 1);
}

static void peer_hello_id(struct t *t, uint32_t id)
{
    struct msg_buf m;
    msg_buf_init(&m);
    struct msg_hello h = {
        .lang = {(const uint8_t *)"sh", 2},
        .agent_version = {(const uint8_t *)MSG_AGENT_REFRESH_VERSION,
                          (uint32_t)strlen(MSG_AGENT_REFRESH_VERSION)},
    };
    assert_int_equal(msg_build_hello(&m, id, &h), 0);
    peer_send(t, &m);
}

/* A restored agent gets fresh entropy and the time in an ANNOUNCE, and
 * only the HELLO answering it makes the session ready: not a HELLO of the
 * agent's first life (id 0) that arrives first. Two resumes never send
 * the same bytes. */
static void resume_announces_entropy_and_time(void **state)
{
    (void)state;
    struct announce_seen a, b;
    struct timespec now;
    struct t *t = setup(NULL, "sh");
    assert_int_equal(session_resume(&t->s), 0);
    peer_read_announce(t, &a);
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns =
        (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    assert_int_equal(a.entropy_len, 64);
    assert_true(a.has_realtime);
    assert_true(a.realtime_ns <= now_ns &&
                now_ns - a.realtime_ns < 5000000000ULL);
    assert_int_not_equal(a.id, 0);
    peer_hello_id(t, 0);
    peer_hello_id(t, a.id);
    pump(t);
    assert_int_equal(t->nready, 1);
    assert_int_equal(t->ready_id, a.id);
    assert_int_equal(t->s.state, SESSION_READY);
    teardown(t);

    t = setup(NULL, "sh");
    assert_int_equal(session_resume(&t->s), 0);
    peer_read_announce(t, &b);
    assert_int_equal(b.entropy_len, 64);
    assert_memory_not_equal(a.entropy, b.entropy, 64);
    teardown(t);
}

/* An agent that could not take the host's entropy answers with an ERROR:
 * the session fails, and never becomes ready. */
static void resume_refresh_failure_fails(void **state)
{
    (void)state;
    struct announce_seen a;
    struct t *t = setup(NULL, "sh");
    assert_int_equal(session_resume(&t->s), 0);
    peer_read_announce(t, &a);
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(
        msg_build_error(&m, a.id, MSG_ERR_INTERNAL, "RNDRESEEDCRNG: EPERM"), 0);
    peer_send(t, &m);
    pump(t);
    assert_int_equal(t->nready, 0);
    assert_int_equal(t->ndone, 1);
    assert_int_equal(t->status, RUNVM_EXIT_INFRA);
    assert_string_equal(t->why, "agent error 7: RNDRESEEDCRNG: EPERM");
    assert_int_equal(t->s.state, SESSION_FAILED);
    teardown(t);
}

/* An agent older than the protocol runvm speaks is refused at its HELLO,
 * with what to do; versions compare as dotted numbers. */
static void old_agent_refused(void **state)
{
    (void)state;
    static const struct {
        const char *version;
        bool ok;
    } cases[] = {{"0.1.0", false}, {"", false},         {"0.1.99", false},
                 {"0.2", true},    {"0.2.0", true},     {"0.10.0", true},
                 {"1", true},      {"0.2.0-rc1", true}, {"x", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct t *t = setup(NULL, "sh");
        peer_hello_version(t, cases[i].version);
        pump(t);
        if (cases[i].ok) {
            assert_int_equal(t->s.state, SESSION_READY);
            assert_int_equal(t->ndone, 0);
        } else {
            assert_int_equal(t->s.state, SESSION_FAILED);
            assert_int_equal(t->status, RUNVM_EXIT_INFRA);
            assert_non_null(strstr(t->why, "older than this runvm needs"));
            assert_non_null(strstr(t->why, "make images IMAGE_LANGS=sh"));
        }
        teardown(t);
    }
}

/* An image picked for a version must hold that toolchain: a stale one is
 * refused at HELLO, never run as another version. */
static void stale_image_refused(void **state)
{
    (void)state;
    static const struct {
        const char *want, *toolchain;
        bool ok;
    } cases[] = {
        {"1.24", "go version go1.24.4 linux/amd64", true},
        {"1.24", "go version go1.19.8 linux/amd64", false},
        {"1.2", "go version go1.24.4 linux/amd64", false},
        {"1.19", "go version go1.19.8 linux/amd64", true},
        {"12", "gcc (Debian 12.2.0-14) 12.2.0", true},
        {"14", "gcc (Debian 12.2.0-14) 12.2.0", false},
        {"3.13", "", false}, /* an image that does not say */
        {NULL, "", true},    /* nothing asked */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct t *t = setup_version(NULL, "sh", cases[i].want);
        peer_hello_toolchain(t, MSG_AGENT_MIN_VERSION, cases[i].toolchain);
        pump(t);
        if (cases[i].ok) {
            assert_int_equal(t->s.state, SESSION_READY);
            assert_int_equal(t->ndone, 0);
        } else {
            assert_int_equal(t->s.state, SESSION_FAILED);
            assert_int_equal(t->ndone, 1);
            assert_int_equal(t->status, RUNVM_EXIT_INFRA);
            assert_non_null(strstr(t->why, "is stale"));
            assert_non_null(strstr(t->why, cases[i].toolchain));
            char fix[64];
            snprintf(fix, sizeof(fix), "make images IMAGE_LANGS=sh@%s",
                     cases[i].want);
            assert_non_null(strstr(t->why, fix));
        }
        teardown(t);
    }
}

/* What the guest says reaches a user's terminal only as printable text:
 * an agent ERROR or a HELLO carrying escape sequences cannot drive it. */
static void guest_text_made_printable(void **state)
{
    (void)state;
    struct t *t = setup(NULL, "sh");
    peer_hello(t);
    pump(t);
    static const char *const argv[] = {"true", NULL};
    struct agent_request req = {.run_argv = argv};
    assert_int_equal(session_run(&t->s, &req), 0);
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_error(&m, t->s.run_id, 3,
                                     "\x1b]0;pwned\x07\x1b[2J\r\nfake\\x"),
                     0);
    peer_send(t, &m);
    run_until_done(t);
    assert_string_equal(t->why, "agent error 3: \\x1b]0;pwned\\x07\\x1b[2J"
                                "\\x0d\\x0afake\\x5cx");
    teardown(t);

    t = setup_version(NULL, "sh", "9");
    peer_hello_toolchain(t, MSG_AGENT_MIN_VERSION, "sh 1.0\x1b[31m");
    pump(t);
    assert_int_equal(t->s.state, SESSION_FAILED);
    assert_non_null(strstr(t->why, "\"sh 1.0?[31m\""));
    assert_null(strchr(t->why, 0x1b));
    teardown(t);
}

/* An agent that does not cap a run's output cannot make the host pass on
 * more than the run's max_output (its build step's too, when it has one). */
static void output_capped_by_the_host(void **state)
{
    (void)state;
    struct t *t = setup(NULL, "sh");
    peer_hello(t);
    pump(t);
    static const char *const argv[] = {"true", NULL}, *const none_argv[] = {
                                                          NULL};
    struct agent_request req = {
        .build_argv = none_argv, /* no build step */
        .run_argv = argv,
        .limits = {.max_output = 100},
    };
    assert_int_equal(session_run(&t->s, &req), 0);
    struct msg_buf m, wire;
    msg_buf_init(&m);
    msg_buf_init(&wire);
    char chunk[30];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 10; i++) {
        msg_buf_reset(&m);
        assert_int_equal(msg_build_output(&m, t->s.run_id, MSG_PHASE_RUN,
                                          MSG_STREAM_STDOUT, chunk,
                                          sizeof(chunk)),
                         0);
        assert_int_equal(msg_slip_append(&wire, m.data, m.len), 0);
    }
    struct msg_exit e = {
        .phase = MSG_PHASE_RUN, .exited = true, .status = MSG_EXIT_FINAL};
    msg_buf_reset(&m);
    assert_int_equal(msg_build_exit(&m, t->s.run_id, &e), 0);
    assert_int_equal(msg_slip_append(&wire, m.data, m.len), 0);
    assert_int_equal(write(t->peer, wire.data, wire.len), (ssize_t)wire.len);
    run_until_done(t);
    assert_int_equal(t->out.len, 100); /* cut at the cap, no holes */
    assert_int_equal(t->s.output_dropped, 10 * sizeof(chunk) - 100);
    msg_buf_free(&m);
    msg_buf_free(&wire);
    teardown(t);
}

static void channel_closing_mid_run(void **state)
{
    (void)state;
    struct t *t = setup(NULL, "sh");
    peer_hello(t);
    pump(t);
    assert_int_equal(t->s.state, SESSION_READY);
    static const char *const argv[] = {"true", NULL};
    struct agent_request req = {.run_argv = argv};
    assert_int_equal(session_run(&t->s, &req), 0);
    close(t->peer); /* the agent dies with the run under way */
    t->peer = -1;
    run_until_done(t);
    while (!t->nclosed)
        pump(t);
    assert_int_equal(t->ndone, 1); /* once, as a failure */
    assert_int_equal(t->status, RUNVM_EXIT_INFRA);
    assert_non_null(strstr(t->why, "closed before the run ended"));
    assert_int_equal(t->nclosed, 1);
    assert_int_equal(t->s.state, SESSION_CLOSED);
    assert_int_equal(session_run(&t->s, &req), -EPIPE);
    /* Powering off a gone agent: the VM is to be stopped at once. */
    session_power_off(&t->s, 60000);
    assert_int_equal(t->noverdue, 1);
    session_power_off(&t->s, 60000);
    assert_int_equal(t->noverdue, 1);
    teardown(t);
}

/* A run whose sending finds the agent gone never began: refused, and no
 * done for it, only closed. */
static void run_onto_a_dead_channel(void **state)
{
    (void)state;
    struct t *t = setup(NULL, "sh");
    peer_hello(t);
    pump(t);
    close(t->peer);
    t->peer = -1;
    static const char *const argv[] = {"true", NULL};
    struct agent_request req = {.run_argv = argv};
    assert_int_equal(session_run(&t->s, &req), -EPIPE);
    assert_int_equal(t->nclosed, 1);
    assert_int_equal(t->ndone, 0);
    assert_int_equal(t->s.state, SESSION_CLOSED);
    teardown(t);
}

/* An agent that does not power off within the grace: overdue once, after
 * the SHUTDOWN went out. */
static void power_off_grace(void **state)
{
    (void)state;
    struct t *t = setup(NULL, "sh");
    peer_hello(t);
    pump(t);
    session_power_off(&t->s, 50);
    session_power_off(&t->s, 50); /* asked already: no second timer */
    assert_int_equal(t->noverdue, 0);
    pump(t);
    assert_int_equal(t->noverdue, 1);
    uint8_t buf[64];
    ssize_t n = read(t->peer, buf, sizeof(buf));
    assert_true(n > 1 + MSG_HEADER_SIZE);
    assert_int_equal(buf[0], SLIP_END);
    assert_int_equal(buf[1 + 3], MSG_SHUTDOWN); /* the header's type */
    teardown(t);
}

static void closing_while_idle_is_no_run(void **state)
{
    (void)state;
    struct t *t = setup(NULL, NULL);
    close(t->peer);
    t->peer = -1;
    pump(t);
    assert_int_equal(t->nclosed, 1);
    assert_int_equal(t->ndone, 0);
    assert_int_equal(t->s.state, SESSION_CLOSED);
    teardown(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ready_run_done_and_again),
        cmocka_unit_test(build_failure_and_snippet),
        cmocka_unit_test(agent_error_ends_the_run),
        cmocka_unit_test(wrong_language_fails_once),
        cmocka_unit_test(channel_closing_mid_run),
        cmocka_unit_test(run_onto_a_dead_channel),
        cmocka_unit_test(old_agent_refused),
        cmocka_unit_test(resume_announces_entropy_and_time),
        cmocka_unit_test(resume_refresh_failure_fails),
        cmocka_unit_test(stale_image_refused),
        cmocka_unit_test(guest_text_made_printable),
        cmocka_unit_test(output_capped_by_the_host),
        cmocka_unit_test(power_off_grace),
        cmocka_unit_test(closing_while_idle_is_no_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
