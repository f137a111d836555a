/* The agent on the host: a forked child serves one end of a socketpair and
 * the test speaks the protocol on the other, as runvm would over hvc0.
 * Steps run as uid/gid 1000 when the test runs as root (so RLIMIT_NPROC
 * means something), else as the caller. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/agent.h"
#include "protocol/msg.h"
#include "tests/unit/agent_fixture.h"

#define STEP_UID   1000
#define MAX_EXITS  4
#define MAX_ERRORS 8

struct h {
    struct agent_fixture agent;
    int fd;
    struct msg_reader reader;
    /* What arrived: */
    bool hello;
    int nhellos;
    uint32_t hello_id;
    char lang[32], toolchain[32], source[32];
    struct msg_buf out[2][3]; /* [phase][stream] */
    int nexits;
    struct msg_exit exits[MAX_EXITS];
    uint32_t exit_ids[MAX_EXITS];
    int nerrors;
    uint32_t error_codes[MAX_ERRORS], error_ids[MAX_ERRORS];
    char error_text[MAX_ERRORS][128];
    bool run_over; /* final EXIT or an ERROR for the current id */
    uint32_t current;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t cap, struct msg_bytes b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    if (n)
        memcpy(dst, b.p, n);
    dst[n] = '\0';
}

static void on_msg(void *opaque, const struct msg_view *v)
{
    struct h *h = opaque;
    struct msg_hello he;
    struct msg_output o;
    struct msg_exit e;
    struct msg_error er;

    switch (v->type) {
    case MSG_HELLO:
        assert_int_equal(msg_decode_hello(v, &he), 0);
        h->hello = true;
        h->nhellos++;
        h->hello_id = v->id;
        copy_str(h->lang, sizeof(h->lang), he.lang);
        copy_str(h->toolchain, sizeof(h->toolchain), he.toolchain);
        copy_str(h->source, sizeof(h->source), he.source);
        break;
    case MSG_OUTPUT:
        assert_int_equal(msg_decode_output(v, &o), 0);
        assert_int_equal(v->id, h->current);
        assert_true(o.data.len <= MSG_CHUNK);
        msg_buf_append(&h->out[o.phase][o.stream], o.data.p, o.data.len);
        assert_int_equal(h->out[o.phase][o.stream].err, 0);
        break;
    case MSG_EXIT:
        assert_int_equal(msg_decode_exit(v, &e), 0);
        assert_true(h->nexits < MAX_EXITS);
        h->exit_ids[h->nexits] = v->id;
        h->exits[h->nexits++] = e;
        if (v->id == h->current && (e.status & MSG_EXIT_FINAL))
            h->run_over = true;
        break;
    case MSG_ERROR:
        assert_int_equal(msg_decode_error(v, &er), 0);
        assert_true(h->nerrors < MAX_ERRORS);
        h->error_codes[h->nerrors] = er.code;
        h->error_ids[h->nerrors] = v->id;
        copy_str(h->error_text[h->nerrors], 128, er.message);
        h->nerrors++;
        if (v->id == h->current)
            h->run_over = true;
        break;
    default: fail_msg("agent sent message type %u", v->type);
    }
}

/* Reads from the agent until *flag is set; fails after timeout_ms. */
static void wait_for(struct h *h, const bool *flag, int timeout_ms)
{
    static uint8_t buf[1 << 16];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (!*flag) {
        uint64_t now = now_ms();
        if (now >= deadline)
            fail_msg("agent did not answer within %d ms", timeout_ms);
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r <= 0)
            continue;
        ssize_t n = read(h->fd, buf, sizeof(buf));
        if (n <= 0)
            fail_msg("agent closed the channel");
        msg_reader_feed(&h->reader, buf, (size_t)n);
    }
}

static void send_msg(struct h *h, struct msg_buf *m)
{
    struct msg_buf wire;
    msg_buf_init(&wire);
    assert_int_equal(msg_slip_append(&wire, m->data, m->len), 0);
    size_t off = 0;
    while (off < wire.len) {
        ssize_t n = write(h->fd, wire.data + off, wire.len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    msg_buf_free(&wire);
    msg_buf_reset(m);
}

static void reset_results(struct h *h)
{
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 3; s++)
            msg_buf_reset(&h->out[p][s]);
    h->nexits = 0;
    h->nerrors = 0;
    h->run_over = false;
}

/* Starts an agent; with cgroup, with a cgroup root for its steps, as PID 1
 * has: then NULL where this machine offers none (the caller skips). */
static struct h *start_agent_with(const char *lang_conf, bool cgroup,
                                  int (*refresh)(const struct msg_announce *,
                                                 char *, size_t))
{
    struct h *h = calloc(1, sizeof(*h));
    int sv[2];
    assert_non_null(h);
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 3; s++)
            msg_buf_init(&h->out[p][s]);
    assert_int_equal(agent_fixture_init(&h->agent, "test_agent", lang_conf), 0);
    h->agent.refresh = refresh;
    if (cgroup) {
        int r = agent_fixture_use_cgroup(&h->agent, "test_agent");
        if (r < 0) {
            fprintf(stderr, "no cgroup v2 for the steps here: %s\n",
                    strerror(-r));
            assert_int_equal(agent_fixture_free(&h->agent), 0);
            free(h);
            return NULL;
        }
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(msg_reader_init(&h->reader, on_msg, NULL, h), 0);
    assert_int_equal(agent_fixture_start(&h->agent, sv[1]), 0);
    h->fd = sv[0];
    wait_for(h, &h->hello, 5000);
    return h;
}

static struct h *start_agent(const char *lang_conf)
{
    return start_agent_with(lang_conf, false, NULL);
}

/* Ends the agent (closing the channel) and returns its exit status. */
static int stop_agent(struct h *h)
{
    int st = -1;
    close(h->fd);
    /* Closing the channel ends the agent; SIGKILL only if it hangs. */
    agent_fixture_stop(&h->agent, &st);
    msg_reader_free(&h->reader);
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 3; s++)
            msg_buf_free(&h->out[p][s]);
    assert_int_equal(agent_fixture_free(&h->agent), 0);
    free(h);
    return st;
}

struct run_opts {
    const char *const *argv;       /* run argv, NULL: lang.conf */
    const char *const *build_argv; /* NULL: lang.conf */
    const char *stdin_data;
    size_t stdin_len;
    uint16_t flags;
    struct msg_limits limits;
    bool has_build_limits;
    struct msg_limits build_limits;
    const char *file_name; /* NULL with file_data: unnamed */
    const void *file_data;
    size_t file_len;
};

static void send_run(struct h *h, uint32_t id, const struct run_opts *o)
{
    struct msg_buf m;
    msg_buf_init(&m);
    msg_begin(&m, MSG_RUN, o->flags, id);
    if (o->file_name || o->file_data)
        msg_put_file(&m, o->file_name, 0644, o->file_data, o->file_len);
    if (o->build_argv)
        msg_put_strv(&m, MSG_TAG_BUILD_ARGV, o->build_argv);
    if (o->argv)
        msg_put_strv(&m, MSG_TAG_RUN_ARGV, o->argv);
    if (o->stdin_data)
        msg_put_bytes(&m, MSG_TAG_STDIN, o->stdin_data, o->stdin_len);
    if (o->limits.wall_ms)
        msg_put_u64(&m, MSG_TAG_WALL_MS, o->limits.wall_ms);
    if (o->limits.cpu_ms)
        msg_put_u64(&m, MSG_TAG_CPU_MS, o->limits.cpu_ms);
    if (o->limits.mem_bytes)
        msg_put_u64(&m, MSG_TAG_MEM_BYTES, o->limits.mem_bytes);
    if (o->limits.max_procs)
        msg_put_u64(&m, MSG_TAG_MAX_PROCS, o->limits.max_procs);
    if (o->limits.max_output)
        msg_put_u64(&m, MSG_TAG_MAX_OUTPUT, o->limits.max_output);
    if (o->has_build_limits) {
        size_t mark = msg_nest_begin(&m, MSG_TAG_BUILD_LIMITS);
        if (o->build_limits.wall_ms)
            msg_put_u64(&m, MSG_TAG_WALL_MS, o->build_limits.wall_ms);
        if (o->build_limits.max_output)
            msg_put_u64(&m, MSG_TAG_MAX_OUTPUT, o->build_limits.max_output);
        msg_nest_end(&m, mark);
    }
    assert_int_equal(msg_end(&m), 0);
    send_msg(h, &m);
    msg_buf_free(&m);
}

/* Sends a RUN and waits for its end; returns the final EXIT (or NULL when
 * the RUN ended with an ERROR). */
static const struct msg_exit *run(struct h *h, uint32_t id,
                                  const struct run_opts *o, int timeout_ms)
{
    reset_results(h);
    h->current = id;
    send_run(h, id, o);
    wait_for(h, &h->run_over, timeout_ms);
    if (h->nexits == 0)
        return NULL;
    return &h->exits[h->nexits - 1];
}

static bool out_is(struct h *h, int phase, int stream, const char *want)
{
    struct msg_buf *b = &h->out[phase][stream];
    if (b->len == strlen(want) && !memcmp(b->data, want, b->len))
        return true;
    fprintf(stderr, "output[%d][%d] = '%.*s', want '%s'\n", phase, stream,
            (int)b->len, (const char *)b->data, want);
    return false;
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- tests ----------------------------------------------------------------
 */

static void hello_and_lang_conf_defaults(void **state)
{
    (void)state;
    struct h *h = start_agent("# test image\n"
                              "LANG=shell\n"
                              "TOOLCHAIN=dash 0.5\n"
                              "SOURCE=main.sh\n"
                              "RUN=sh main.sh 'two words'\n"
                              "ENV=GREETING=hi there\n");
    assert_string_equal(h->lang, "shell");
    assert_string_equal(h->toolchain, "dash 0.5");
    assert_string_equal(h->source, "main.sh");
    const char *src = "echo \"$GREETING/$1/$#\"; pwd >&2\n";
    struct run_opts o = {
        .file_name = "main.sh", .file_data = src, .file_len = strlen(src)};
    const struct msg_exit *e = run(h, 1, &o, 5000);
    assert_non_null(e);
    assert_true(
        out_is(h, MSG_PHASE_RUN, MSG_STREAM_STDOUT, "hi there/two words/1\n"));
    /* The step ran in a fresh directory under the work root. */
    assert_true(h->out[1][MSG_STREAM_STDERR].len > strlen(h->agent.work));
    assert_memory_equal(h->out[1][MSG_STREAM_STDERR].data, h->agent.work,
                        strlen(h->agent.work));
    assert_true(e->exited);
    assert_int_equal(e->code, 0);
    assert_int_equal(e->phase, MSG_PHASE_RUN);
    assert_int_equal(h->nexits, 1); /* no BUILD line: no build step */
    assert_int_equal(stop_agent(h), AGENT_END_CHANNEL_CLOSED << 8);
}

static void stdout_and_stderr_apart(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {
        .argv = ARGV("sh", "-c",
                     "echo out1; echo err1 >&2; echo out2; echo err2 >&2; "
                     "exit 3"),
    };
    const struct msg_exit *e = run(h, 2, &o, 5000);
    assert_non_null(e);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "out1\nout2\n"));
    assert_true(out_is(h, 1, MSG_STREAM_STDERR, "err1\nerr2\n"));
    assert_true(e->exited);
    assert_int_equal(e->code, 3);
    assert_int_equal(e->status, MSG_EXIT_FINAL);
    assert_true(e->wall_ms < 5000);
    assert_true(e->peak_mem > 0);
    stop_agent(h);
}

static void stdin_from_request_then_frames(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {.argv = ARGV("cat"),
                         .stdin_data = "hello ",
                         .stdin_len = 6,
                         .flags = MSG_RUN_STDIN_OPEN};
    reset_results(h);
    h->current = 3;
    send_run(h, 3, &o);
    /* cat echoes the first part before the rest exists. */
    bool got_first = false;
    uint64_t deadline = now_ms() + 5000;
    while (h->out[1][MSG_STREAM_STDOUT].len < 6 && now_ms() < deadline) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            uint8_t buf[4096];
            ssize_t n = read(h->fd, buf, sizeof(buf));
            assert_true(n > 0);
            msg_reader_feed(&h->reader, buf, (size_t)n);
        }
    }
    got_first = out_is(h, 1, MSG_STREAM_STDOUT, "hello ");
    assert_true(got_first);
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_stdin(&m, 3, "wor", 3, false), 0);
    send_msg(h, &m);
    assert_int_equal(msg_build_stdin(&m, 3, "ld\n", 3, true), 0);
    send_msg(h, &m);
    msg_buf_free(&m);
    wait_for(h, &h->run_over, 5000);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "hello world\n"));
    assert_int_equal(h->exits[0].code, 0);
    stop_agent(h);
}

static void binary_bytes_intact(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    uint8_t bytes[1024];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(i * 37 + i / 256);
    uint8_t in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)(255 - i);
    struct run_opts o = {.argv = ARGV("sh", "-c",
                                      "cat data.bin; cat; "
                                      "cat data.bin >&2"),
                         .file_name = "data.bin",
                         .file_data = bytes,
                         .file_len = sizeof(bytes),
                         .stdin_data = (const char *)in,
                         .stdin_len = sizeof(in)};
    const struct msg_exit *e = run(h, 4, &o, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    struct msg_buf *out = &h->out[1][MSG_STREAM_STDOUT];
    assert_int_equal(out->len, sizeof(bytes) + sizeof(in));
    assert_memory_equal(out->data, bytes, sizeof(bytes));
    assert_memory_equal(out->data + sizeof(bytes), in, sizeof(in));
    assert_int_equal(h->out[1][MSG_STREAM_STDERR].len, sizeof(bytes));
    assert_memory_equal(h->out[1][MSG_STREAM_STDERR].data, bytes,
                        sizeof(bytes));
    stop_agent(h);
}

static bool pid_gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static void timeout_kills_group_ignoring_sigterm(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {
        .argv = ARGV("sh", "-c",
                     "trap '' TERM; (trap '' TERM; sleep 60) & echo $!; "
                     "sleep 60 & echo $!; wait"),
        .limits = {.wall_ms = 400},
    };
    uint64_t t0 = now_ms();
    const struct msg_exit *e = run(h, 5, &o, 5000);
    uint64_t took = now_ms() - t0;
    assert_non_null(e);
    assert_true(e->signaled);
    assert_int_equal(e->signal, SIGKILL);
    assert_true(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->status & MSG_EXIT_FINAL);
    assert_true(e->wall_ms >= 400 && e->wall_ms < 2000);
    assert_true(took < 3000);
    /* Both children of the step died with it. */
    h->out[1][1].data[h->out[1][1].len - 1] = '\0';
    long kid1 = 0, kid2 = 0;
    assert_int_equal(sscanf((char *)h->out[1][1].data, "%ld %ld", &kid1, &kid2),
                     2);
    assert_true(pid_gone((pid_t)kid1));
    assert_true(pid_gone((pid_t)kid2));
    stop_agent(h);
}

/* Processes of the step user still alive (0 when none). */
static int count_uid_procs(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        char path[300], line[256];
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f)) {
            unsigned ruid;
            if (sscanf(line, "Uid: %u", &ruid) == 1) {
                if (ruid == uid)
                    n++;
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static void fork_bomb_contained(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        /* RLIMIT_NPROC needs a dedicated user; only root can switch. */
        skip();
    }
    assert_int_equal(count_uid_procs(STEP_UID), 0);
    struct h *h = start_agent(NULL);
    /* The step's shell forks once, before the bomb, and then becomes
     * "sleep": a fork of its own later could find the bomb at the process
     * limit, and the shell would exit by itself with "Cannot fork". */
    struct run_opts o = {
        .argv = ARGV("sh", "-c", "f() { f | f & }; f & exec sleep 30"),
        .limits = {.wall_ms = 1500, .max_procs = 16, .max_output = 1 << 20},
    };
    uint64_t t0 = now_ms();
    const struct msg_exit *e = run(h, 6, &o, 10000);
    assert_non_null(e);
    assert_true(now_ms() - t0 < 5000);
    /* Only a kill ends "sleep 30" early: the wall limit or the output cap
     * (a bomb that cannot fork fills stderr with complaints). */
    assert_true(e->signaled);
    assert_int_equal(e->signal, SIGKILL);
    assert_true(e->status & (MSG_EXIT_TIMED_OUT | MSG_EXIT_OUTPUT_TRUNCATED));
    /* The process limit is what stopped it. */
    struct msg_buf *err = &h->out[1][MSG_STREAM_STDERR];
    assert_non_null(memmem(err->data, err->len, "fork", 4));
    /* Nothing of the bomb outlives its EXIT... */
    assert_int_equal(count_uid_procs(STEP_UID), 0);
    /* ...and the agent still works. */
    struct run_opts o2 = {.argv = ARGV("echo", "alive")};
    e = run(h, 7, &o2, 5000);
    assert_non_null(e);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "alive\n"));
    stop_agent(h);
}

static void memory_hog_contained(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    const uint64_t limit = 64ull << 20;
    struct run_opts o = {
        .argv = ARGV("sh", "-c",
                     "x=$(head -c 300000000 /dev/zero | tr '\\0' a); "
                     "echo survived ${#x}"),
        .limits = {.wall_ms = 10000, .mem_bytes = limit},
    };
    const struct msg_exit *e = run(h, 8, &o, 15000);
    assert_non_null(e);
    assert_false(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->signaled || (e->exited && e->code != 0));
    assert_int_equal(h->out[1][MSG_STREAM_STDOUT].len, 0);
    /* RLIMIT_AS bounds the address space, so the resident peak too. */
    assert_true(e->peak_mem > 0);
    assert_true(e->peak_mem <= limit);
    stop_agent(h);
}

static void output_capped_and_flagged(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {
        .argv = ARGV("head", "-c", "104857600", "/dev/zero"),
        .limits = {.max_output = 1 << 20},
    };
    uint64_t t0 = now_ms();
    const struct msg_exit *e = run(h, 9, &o, 10000);
    assert_non_null(e);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(h->out[1][MSG_STREAM_STDOUT].len, 1 << 20);
    assert_true(e->status & MSG_EXIT_OUTPUT_TRUNCATED);
    assert_false(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->signaled);
    assert_int_equal(e->signal, SIGKILL);
    stop_agent(h);
}

/* Under the cap, every byte of a large output arrives, in order. */
static void large_output_complete(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {
        .argv = ARGV("sh", "-c", "seq 1 1000000"),
        .limits = {.max_output = 16 << 20},
    };
    const struct msg_exit *e = run(h, 10, &o, 20000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    assert_int_equal(e->status, MSG_EXIT_FINAL);
    struct msg_buf *out = &h->out[1][MSG_STREAM_STDOUT];
    assert_int_equal(out->len, 6888896); /* bytes of `seq 1 1000000` */
    assert_memory_equal(out->data + out->len - 8, "1000000\n", 8);
    stop_agent(h);
}

static void unknown_and_bad_messages_answered(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct msg_buf m;
    msg_buf_init(&m);
    reset_results(h);
    h->current = 77;
    msg_begin(&m, 99, 0, 77);
    assert_int_equal(msg_end(&m), 0);
    send_msg(h, &m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->nerrors, 1);
    assert_int_equal(h->error_codes[0], MSG_ERR_UNKNOWN_TYPE);
    assert_int_equal(h->error_ids[0], 77);

    /* A corrupted frame: dropped, reported with id 0, not acted on. */
    reset_results(h);
    h->current = 0;
    struct run_opts o = {.argv = ARGV("touch", "/tmp/must-not-exist")};
    msg_begin(&m, MSG_RUN, 0, 78);
    msg_put_strv(&m, MSG_TAG_RUN_ARGV, o.argv);
    assert_int_equal(msg_end(&m), 0);
    m.data[m.len - 1] ^= 0xff;
    send_msg(h, &m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->error_codes[0], MSG_ERR_BAD_FRAME);
    assert_int_equal(h->nexits, 0);

    /* STDIN for no RUN; a malformed RUN; a path in a file name. */
    reset_results(h);
    h->current = 79;
    assert_int_equal(msg_build_stdin(&m, 79, "x", 1, true), 0);
    send_msg(h, &m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->error_codes[0], MSG_ERR_NO_RUN);
    reset_results(h);
    h->current = 80;
    msg_begin(&m, MSG_RUN, 0, 80);
    msg_put_bytes(&m, MSG_TAG_RUN_ARGV, "sh", 2); /* no NUL */
    assert_int_equal(msg_end(&m), 0);
    send_msg(h, &m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->error_codes[0], MSG_ERR_BAD_REQUEST);
    struct run_opts bad = {.argv = ARGV("true"),
                           .file_name = "../escape",
                           .file_data = "x",
                           .file_len = 1};
    assert_null(run(h, 81, &bad, 5000));
    assert_int_equal(h->error_codes[0], MSG_ERR_BAD_REQUEST);
    /* No command anywhere (no lang.conf, none in the request). */
    struct run_opts none = {0};
    assert_null(run(h, 82, &none, 5000));
    assert_int_equal(h->error_codes[0], MSG_ERR_NO_COMMAND);
    msg_buf_free(&m);

    /* Still serving. */
    struct run_opts ok = {.argv = ARGV("echo", "ok")};
    assert_non_null(run(h, 83, &ok, 5000));
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "ok\n"));
    stop_agent(h);
}

static void busy_while_running(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts slow = {.argv = ARGV("sleep", "0.3")};
    reset_results(h);
    h->current = 20;
    send_run(h, 20, &slow);
    send_run(h, 21, &slow);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->nerrors, 1);
    assert_int_equal(h->error_codes[0], MSG_ERR_BUSY);
    assert_int_equal(h->error_ids[0], 21);
    assert_int_equal(h->exit_ids[0], 20);
    assert_int_equal(h->exits[0].code, 0);
    stop_agent(h);
}

static void build_then_runs_reusing_it(void **state)
{
    (void)state;
    struct h *h = start_agent("BUILD=sh -c 'echo building; cp src prog'\n"
                              "RUN=sh prog\n");
    const char *src = "echo \"ran with $(cat)\"\n";
    struct run_opts o = {.file_name = "src",
                         .file_data = src,
                         .file_len = strlen(src),
                         .stdin_data = "one",
                         .stdin_len = 3};
    const struct msg_exit *e = run(h, 30, &o, 5000);
    assert_non_null(e);
    assert_int_equal(h->nexits, 2);
    assert_int_equal(h->exits[0].phase, MSG_PHASE_BUILD);
    assert_int_equal(h->exits[0].code, 0);
    assert_false(h->exits[0].status & MSG_EXIT_FINAL);
    assert_int_equal(h->exits[1].phase, MSG_PHASE_RUN);
    assert_true(h->exits[1].status & MSG_EXIT_FINAL);
    assert_true(out_is(h, 0, MSG_STREAM_STDOUT, "building\n"));
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "ran with one\n"));

    /* Same directory, no build: the built program, new stdin. */
    struct run_opts again = {.flags =
                                 MSG_RUN_REUSE_WORKDIR | MSG_RUN_SKIP_BUILD,
                             .stdin_data = "two",
                             .stdin_len = 3};
    e = run(h, 31, &again, 5000);
    assert_non_null(e);
    assert_int_equal(h->nexits, 1);
    assert_int_equal(e->code, 0);
    assert_int_equal(h->out[0][MSG_STREAM_STDOUT].len, 0);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "ran with two\n"));

    /* A fresh RUN gets a fresh directory: nothing to build from. */
    struct run_opts fresh = {0};
    e = run(h, 32, &fresh, 5000);
    assert_non_null(e);
    assert_int_equal(e->phase, MSG_PHASE_BUILD);
    assert_true(e->exited);
    assert_int_not_equal(e->code, 0);
    assert_true(e->status & MSG_EXIT_FINAL);
    assert_int_equal(h->out[1][MSG_STREAM_STDOUT].len, 0);
    stop_agent(h);
}

/* What a file of the test's own holds, as a string ("" when unreadable). */
static void read_small_file(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* A step leaves something under the name the next reusing RUN writes a
 * file to: a FIFO (open() without O_NONBLOCK used to block PID 1 for good,
 * deaf to SHUTDOWN), a symlink out of the directory, a hard link to another
 * file of the snippet's. The agent answers, the file is a regular file with
 * the request's content, and nothing the trap pointed at is written. */
static void reuse_write_survives_traps(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    char victim[128], got[64];
    snprintf(victim, sizeof(victim), "%s/victim", h->agent.work);
    FILE *vf = fopen(victim, "w");
    assert_non_null(vf);
    fputs("victim\n", vf);
    fclose(vf);
    char link_cmd[200];
    snprintf(link_cmd, sizeof(link_cmd), "ln -s %s main.py", victim);
    const char *traps[] = {"mkfifo main.py", link_cmd,
                           "echo mine > keep; ln keep main.py"};
    const char *src = "print(1)\n";
    uint32_t id = 100;

    for (size_t i = 0; i < sizeof(traps) / sizeof(traps[0]); i++) {
        struct run_opts trap = {.argv = ARGV("sh", "-c", traps[i])};
        const struct msg_exit *e = run(h, id++, &trap, 5000);
        assert_non_null(e);
        assert_int_equal(e->code, 0);

        struct run_opts reuse = {
            .flags = MSG_RUN_REUSE_WORKDIR,
            .argv = ARGV("sh", "-c",
                         "test -f main.py && test ! -L main.py && "
                         "cat main.py; cat keep 2>/dev/null; true"),
            .file_name = "main.py",
            .file_data = src,
            .file_len = strlen(src),
        };
        e = run(h, id++, &reuse, 5000);
        assert_non_null(e);
        assert_int_equal(h->nerrors, 0);
        assert_int_equal(e->code, 0);
        assert_true(out_is(h, 1, MSG_STREAM_STDOUT,
                           strstr(traps[i], "keep") ? "print(1)\nmine\n"
                                                    : "print(1)\n"));
        read_small_file(victim, got, sizeof(got));
        assert_string_equal(got, "victim\n");
    }

    /* A directory in the way cannot be replaced: the host is told which
     * file and why, and the agent serves on. */
    struct run_opts dir = {.argv = ARGV("mkdir", "main.py")};
    assert_non_null(run(h, id++, &dir, 5000));
    struct run_opts reuse_dir = {.flags = MSG_RUN_REUSE_WORKDIR,
                                 .argv = ARGV("true"),
                                 .file_name = "main.py",
                                 .file_data = src,
                                 .file_len = strlen(src)};
    assert_null(run(h, id++, &reuse_dir, 5000));
    assert_int_equal(h->error_codes[0], MSG_ERR_INTERNAL);
    assert_non_null(strstr(h->error_text[0], "main.py"));
    assert_non_null(strstr(h->error_text[0], "directory"));
    struct run_opts ok = {.flags = MSG_RUN_REUSE_WORKDIR,
                          .argv = ARGV("sh", "-c", "ls -A")};
    assert_non_null(run(h, id++, &ok, 5000));
    /* No temporary file is left behind by the failed write. */
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "main.py\n"));

    /* And SHUTDOWN is heard. */
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_shutdown(&m, id), 0);
    send_msg(h, &m);
    msg_buf_free(&m);
    int st;
    assert_int_equal(agent_fixture_stop(&h->agent, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), AGENT_END_SHUTDOWN);
    stop_agent(h);
}

/* Copies the file at from to to with mode (root-owned when the test is
 * root). */
static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, mode), 0);
}

/* A step runs with no_new_privs and, where the agent is root, with empty
 * capability sets (bounding and ambient too): a setuid-root binary in the
 * image runs with the step's own uid. */
static void step_cannot_gain_privileges(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {.argv = ARGV("grep", "-E",
                                      "^(CapPrm|CapEff|CapBnd|CapAmb|"
                                      "NoNewPrivs):",
                                      "/proc/self/status")};
    const struct msg_exit *e = run(h, 110, &o, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    if (geteuid() != 0) {
        /* Steps run as the caller, who may keep what it has. */
        struct msg_buf *out = &h->out[1][MSG_STREAM_STDOUT];
        assert_non_null(memmem(out->data, out->len, "NoNewPrivs:\t1\n", 14));
        stop_agent(h);
        return;
    }
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT,
                       "CapPrm:\t0000000000000000\n"
                       "CapEff:\t0000000000000000\n"
                       "CapBnd:\t0000000000000000\n"
                       "CapAmb:\t0000000000000000\n"
                       "NoNewPrivs:\t1\n"));

    /* The threat itself: a setuid-root copy of id(1), reachable by the
     * step (the work root is 0711). Without no_new_privs it says 0. */
    char suid[128];
    snprintf(suid, sizeof(suid), "%s/suid-id", h->agent.work);
    copy_file(access("/usr/bin/id", X_OK) == 0 ? "/usr/bin/id" : "/bin/id",
              suid, 04755);
    struct run_opts id = {.argv = ARGV(suid, "-u")};
    e = run(h, 111, &id, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "1000\n"));
    stop_agent(h);
}

/* Makes a chain of depth directories under root, a file in each: its
 * paths run far past PATH_MAX, which a walk by path names cannot remove. */
static void make_deep_tree(const char *root, int depth)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < depth; i++) {
        int file = openat(fd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(file >= 0);
        close(file);
        assert_int_equal(mkdirat(fd, "dddd", 0755), 0);
        int next = openat(fd, "dddd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    close(fd);
}

/* A RUN without REUSE_WORKDIR is a new submission: it finds the tmp root
 * (the steps' TMPDIR; /tmp in the guest) empty, and the last work
 * directory gone, whatever the last one left there (links out of it, a
 * directory it cannot read, a tree deeper than PATH_MAX); a reusing RUN
 * keeps both. Nothing a link pointed at is touched. */
static void fresh_run_gets_empty_tmp(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    char outside[128], keep[160], script[600];
    snprintf(outside, sizeof(outside), "%s/outside", h->agent.work);
    assert_int_equal(mkdir(outside, 0755), 0);
    snprintf(keep, sizeof(keep), "%s/keep", outside);
    FILE *kf = fopen(keep, "w");
    assert_non_null(kf);
    fclose(kf);
    snprintf(script, sizeof(script),
             "cd \"$TMPDIR\" && echo one > f && mkdir -p d/e && "
             "echo x > d/e/g && mkdir .hidden && ln -s %s link && "
             "ln -s %s flink%s",
             outside, keep, geteuid() == 0 ? " && chmod 0 d" : "");
    struct run_opts fill = {.argv = ARGV("sh", "-c", script)};
    const struct msg_exit *e = run(h, 120, &fill, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);

    struct run_opts list = {.flags = MSG_RUN_REUSE_WORKDIR,
                            .argv = ARGV("sh", "-c", "ls -A \"$TMPDIR\"")};
    e = run(h, 121, &list, 5000);
    assert_non_null(e);
    assert_true(
        out_is(h, 1, MSG_STREAM_STDOUT, ".hidden\nd\nf\nflink\nlink\n"));

    struct run_opts fresh = {
        .argv = ARGV("sh", "-c", "ls -A \"$TMPDIR\"; echo \"$TMPDIR\"; pwd")};
    e = run(h, 122, &fresh, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    char want[300];
    snprintf(want, sizeof(want), "%s\n", h->agent.tmp);
    struct msg_buf *out = &h->out[1][MSG_STREAM_STDOUT];
    assert_true(out->len > strlen(want));
    assert_memory_equal(out->data, want, strlen(want));
    char last_workdir[256];
    snprintf(last_workdir, sizeof(last_workdir), "%.*s",
             (int)(out->len - strlen(want) - 1),
             (const char *)out->data + strlen(want));
    struct stat st;
    assert_int_equal(stat(h->agent.tmp, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 01777);
    assert_int_equal(access(keep, F_OK), 0);

    /* Deeper than PATH_MAX, in the tmp root and in the work dir. */
    make_deep_tree(h->agent.tmp, 1500);
    make_deep_tree(last_workdir, 1500);
    e = run(h, 123, &fresh, 10000);
    assert_non_null(e);
    assert_int_equal(h->nerrors, 0);
    assert_int_equal(e->code, 0);
    assert_memory_equal(out->data, want, strlen(want));
    assert_int_equal(stat(last_workdir, &st), -1);
    assert_int_equal(errno, ENOENT);
    stop_agent(h);
}

/* The CPU limit is the whole step's: four busy processes share 1 s of CPU
 * time, where RLIMIT_CPU gave each its own second (3.2 s used, exit 0).
 * The step's cgroup counts them together; past the limit the step is
 * killed and reported timed out. Needs a cgroup v2 hierarchy to make the
 * step's cgroup in (cpu.stat is there without any controller). */
static void cpu_limit_counts_every_process(void **state)
{
    (void)state;
    struct h *h = start_agent_with(NULL, true, NULL);
    if (!h)
        skip();
    struct run_opts o = {
        .argv = ARGV("sh", "-c",
                     "for i in 1 2 3 4; do (while :; do :; done) & done; "
                     "wait; echo survived"),
        .limits = {.wall_ms = 20000, .cpu_ms = 1000},
    };
    uint64_t t0 = now_ms();
    const struct msg_exit *e = run(h, 130, &o, 25000);
    assert_non_null(e);
    assert_int_equal(h->out[1][MSG_STREAM_STDOUT].len, 0);
    assert_true(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->signaled);
    assert_int_equal(e->signal, SIGKILL);
    /* The cgroup's own count: at the limit, and little past it (the looks
     * at it come 10 ms apart near the end). */
    fprintf(stderr, "cpu %llu ms in %llu ms wall\n",
            (unsigned long long)e->cpu_ms, (unsigned long long)e->wall_ms);
    assert_true(e->cpu_ms >= 1000);
    assert_true(e->cpu_ms < 1500);
    assert_true(now_ms() - t0 < 10000);

    /* A step under its CPU limit is left alone. */
    struct run_opts calm = {.argv = ARGV("sh", "-c", "sleep 0.3; echo ok"),
                            .limits = {.cpu_ms = 1000}};
    e = run(h, 131, &calm, 5000);
    assert_non_null(e);
    assert_int_equal(e->status, MSG_EXIT_FINAL);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "ok\n"));
    stop_agent(h);
}

/* The build step gets BUILD_TIMER_SLACK_NS (4 ms); the program keeps what
 * the agent has. */
static void build_has_coarse_timer_slack(void **state)
{
    (void)state;
    char mine[32] = "";
    FILE *f = fopen("/proc/self/timerslack_ns", "r");
    assert_non_null(f);
    assert_non_null(fgets(mine, sizeof(mine), f));
    fclose(f);
    assert_string_not_equal(mine, "4000000\n");
    struct h *h = start_agent("BUILD=cat /proc/self/timerslack_ns\n"
                              "RUN=cat /proc/self/timerslack_ns\n");
    struct run_opts o = {0};
    const struct msg_exit *e = run(h, 40, &o, 5000);
    assert_non_null(e);
    assert_int_equal(h->nexits, 2);
    assert_int_equal(e->code, 0);
    assert_true(out_is(h, 0, MSG_STREAM_STDOUT, "4000000\n"));
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, mine));
    stop_agent(h);
}

/* BUILD_LIMITS: a build that sleeps past its own limit times out in the
 * build phase although the run limit would let it finish. */
static void build_limit_stops_build(void **state)
{
    (void)state;
    struct h *h = start_agent("BUILD=sleep 3\nRUN=echo ran\n");
    struct run_opts o = {.limits = {.wall_ms = 10000},
                         .has_build_limits = true,
                         .build_limits = {.wall_ms = 300}};
    uint64_t t0 = now_ms();
    const struct msg_exit *e = run(h, 60, &o, 8000);
    assert_non_null(e);
    assert_true(now_ms() - t0 < 2500);
    assert_int_equal(h->nexits, 1);
    assert_int_equal(e->phase, MSG_PHASE_BUILD);
    assert_true(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->status & MSG_EXIT_FINAL);
    assert_true(e->wall_ms >= 300 && e->wall_ms < 2500);
    assert_int_equal(h->out[1][MSG_STREAM_STDOUT].len, 0);

    /* A RUN without BUILD_LIMITS (an older sender): its limits are each
     * step's, so the build gets the 300 ms as well. */
    struct run_opts old = {.limits = {.wall_ms = 300}};
    e = run(h, 61, &old, 8000);
    assert_non_null(e);
    assert_int_equal(e->phase, MSG_PHASE_BUILD);
    assert_true(e->status & MSG_EXIT_TIMED_OUT);
    stop_agent(h);
}

/* ...and the run step keeps the RUN's own limits: a build longer than the
 * run limit and louder than its output cap passes; the run times out. */
static void run_limits_stay_the_run_steps(void **state)
{
    (void)state;
    struct h *h = start_agent("BUILD=sh -c 'sleep 0.6; seq 1 100'\n"
                              "RUN=sleep 3\n");
    struct run_opts o = {.limits = {.wall_ms = 300, .max_output = 10},
                         .has_build_limits = true,
                         .build_limits = {.wall_ms = 5000}};
    const struct msg_exit *e = run(h, 62, &o, 8000);
    assert_non_null(e);
    assert_int_equal(h->nexits, 2);
    assert_int_equal(h->exits[0].phase, MSG_PHASE_BUILD);
    assert_true(h->exits[0].exited);
    assert_int_equal(h->exits[0].code, 0);
    assert_int_equal(h->exits[0].status, 0); /* not timed out, not cut */
    assert_int_equal(h->out[0][MSG_STREAM_STDOUT].len, 292);
    assert_int_equal(e->phase, MSG_PHASE_RUN);
    assert_true(e->status & MSG_EXIT_TIMED_OUT);
    assert_true(e->wall_ms >= 300 && e->wall_ms < 2500);
    stop_agent(h);
}

/* A FILE without a name is written under lang.conf's SOURCE. */
/* A RUN of two files (name NULL or "": none), which the agent must
 * refuse as a bad request without running anything. */
static void run_two_files_refused(struct h *h, uint32_t id, const char *n1,
                                  const char *d1, const char *n2,
                                  const char *d2)
{
    reset_results(h);
    h->current = id;
    struct msg_buf m;
    msg_buf_init(&m);
    msg_begin(&m, MSG_RUN, 0, id);
    msg_put_file(&m, n1, 0, d1, strlen(d1));
    msg_put_file(&m, n2, 0, d2, strlen(d2));
    assert_int_equal(msg_end(&m), 0);
    send_msg(h, &m);
    msg_buf_free(&m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->nexits, 0);
    assert_int_equal(h->error_codes[0], MSG_ERR_BAD_REQUEST);
}

static void unnamed_file_gets_source_name(void **state)
{
    (void)state;
    struct h *h = start_agent("SOURCE=prog.sh\n"
                              "RUN=sh -c 'ls; sh prog.sh'\n");
    const char *src = "echo from prog\n";
    struct run_opts o = {.file_data = src, .file_len = strlen(src)};
    const struct msg_exit *e = run(h, 63, &o, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "prog.sh\nfrom prog\n"));

    /* Two unnamed files would both be SOURCE: refused. */
    run_two_files_refused(h, 64, NULL, "a", "", "b");
    /* A named file that is the source's name too: refused, not written
     * over the source. */
    run_two_files_refused(h, 66, NULL, "echo source\n", "prog.sh",
                          "echo other\n");
    assert_non_null(strstr(h->error_text[0], "both named prog.sh"));
    stop_agent(h);

    /* An image whose lang.conf names no SOURCE cannot name it. */
    h = start_agent("RUN=true\n");
    assert_null(run(h, 65, &o, 5000));
    assert_int_equal(h->error_codes[0], MSG_ERR_BAD_REQUEST);
    assert_non_null(strstr(h->error_text[0], "SOURCE"));
    stop_agent(h);
}

/* ANNOUNCE is answered with a HELLO carrying its id, also while a RUN
 * goes on, which it leaves alone. */
static void announce_answered_with_hello(void **state)
{
    (void)state;
    struct h *h = start_agent("LANG=shell\nTOOLCHAIN=dash\n"
                              "SOURCE=main.sh\n");
    assert_int_equal(h->nhellos, 1);
    assert_int_equal(h->hello_id, 0);
    memset(h->lang, 0, sizeof(h->lang));
    memset(h->source, 0, sizeof(h->source));
    struct msg_buf m;
    msg_buf_init(&m);
    h->hello = false;
    assert_int_equal(msg_build_announce(&m, 70, NULL), 0);
    send_msg(h, &m);
    wait_for(h, &h->hello, 5000);
    assert_int_equal(h->nhellos, 2);
    assert_int_equal(h->hello_id, 70);
    assert_string_equal(h->lang, "shell");
    assert_string_equal(h->toolchain, "dash");
    assert_string_equal(h->source, "main.sh");

    struct run_opts slow = {.argv = ARGV("sh", "-c", "sleep 0.3; echo done")};
    reset_results(h);
    h->current = 71;
    send_run(h, 71, &slow);
    h->hello = false;
    assert_int_equal(msg_build_announce(&m, 72, NULL), 0);
    send_msg(h, &m);
    wait_for(h, &h->hello, 5000);
    assert_int_equal(h->hello_id, 72);
    assert_false(h->run_over); /* answered before the step ended */
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->nerrors, 0);
    assert_int_equal(h->exits[0].code, 0);
    assert_true(out_is(h, 1, MSG_STREAM_STDOUT, "done\n"));
    msg_buf_free(&m);
    stop_agent(h);
}

/* A stand-in for PID 1's refresh: fails, telling what it was given, when
 * the entropy starts with 'F'; succeeds otherwise. */
static int fake_refresh(const struct msg_announce *a, char *err, size_t len)
{
    if (a->entropy.len && a->entropy.p[0] == 'F') {
        snprintf(err, len, "refresh: %u bytes \"%.*s\" at %llu%s",
                 a->entropy.len, (int)a->entropy.len,
                 (const char *)a->entropy.p, (unsigned long long)a->realtime_ns,
                 a->has_realtime ? "" : " (no time)");
        return -EIO;
    }
    return 0;
}

/* ANNOUNCE's entropy and time reach agent_config.refresh before HELLO; a
 * refresh that fails is an ERROR and no HELLO (the host must not run on a
 * VM that shares its RNG with another). */
static void announce_refreshes_before_hello(void **state)
{
    (void)state;
    struct h *h = start_agent_with("LANG=shell\n", false, fake_refresh);
    struct msg_buf m;
    msg_buf_init(&m);
    struct msg_announce an = {
        .entropy = {(const uint8_t *)"FRESHBYTES", 10},
        .has_realtime = true,
        .realtime_ns = 1765000000123456789ULL,
    };
    h->hello = false;
    assert_int_equal(msg_build_announce(&m, 80, &an), 0);
    h->current = 80; /* its ERROR sets run_over */
    send_msg(h, &m);
    wait_for(h, &h->run_over, 5000);
    assert_int_equal(h->error_codes[0], MSG_ERR_INTERNAL);
    assert_string_equal(h->error_text[0], "refresh: 10 bytes \"FRESHBYTES\" at "
                                          "1765000000123456789");
    assert_false(h->hello);

    an.entropy = (struct msg_bytes){(const uint8_t *)"good", 4};
    assert_int_equal(msg_build_announce(&m, 81, &an), 0);
    send_msg(h, &m);
    wait_for(h, &h->hello, 5000);
    assert_int_equal(h->hello_id, 81);
    assert_int_equal(h->nhellos, 2); /* the first, and 81's: none for 80 */
    assert_int_equal(h->nerrors, 1);
    msg_buf_free(&m);
    stop_agent(h);
}

static void exec_failure_is_127(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct run_opts o = {.argv = ARGV("no-such-program-here")};
    const struct msg_exit *e = run(h, 40, &o, 5000);
    assert_non_null(e);
    assert_int_equal(e->code, 127);
    struct msg_buf *err = &h->out[1][MSG_STREAM_STDERR];
    assert_non_null(memmem(err->data, err->len, "no-such-program-here", 20));
    stop_agent(h);
}

static void shutdown_ends_agent(void **state)
{
    (void)state;
    struct h *h = start_agent(NULL);
    struct msg_buf m;
    msg_buf_init(&m);
    assert_int_equal(msg_build_shutdown(&m, 50), 0);
    send_msg(h, &m);
    msg_buf_free(&m);
    /* SHUTDOWN alone ends it, before its channel closes. */
    int st;
    assert_int_equal(agent_fixture_stop(&h->agent, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), AGENT_END_SHUTDOWN);
    stop_agent(h); /* the channel and the rest; the agent is gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_and_lang_conf_defaults),
        cmocka_unit_test(stdout_and_stderr_apart),
        cmocka_unit_test(stdin_from_request_then_frames),
        cmocka_unit_test(binary_bytes_intact),
        cmocka_unit_test(timeout_kills_group_ignoring_sigterm),
        cmocka_unit_test(fork_bomb_contained),
        cmocka_unit_test(memory_hog_contained),
        cmocka_unit_test(output_capped_and_flagged),
        cmocka_unit_test(large_output_complete),
        cmocka_unit_test(unknown_and_bad_messages_answered),
        cmocka_unit_test(busy_while_running),
        cmocka_unit_test(build_then_runs_reusing_it),
        cmocka_unit_test(reuse_write_survives_traps),
        cmocka_unit_test(step_cannot_gain_privileges),
        cmocka_unit_test(fresh_run_gets_empty_tmp),
        cmocka_unit_test(cpu_limit_counts_every_process),
        cmocka_unit_test(build_has_coarse_timer_slack),
        cmocka_unit_test(build_limit_stops_build),
        cmocka_unit_test(run_limits_stay_the_run_steps),
        cmocka_unit_test(unnamed_file_gets_source_name),
        cmocka_unit_test(announce_answered_with_hello),
        cmocka_unit_test(announce_refreshes_before_hello),
        cmocka_unit_test(exec_failure_is_127),
        cmocka_unit_test(shutdown_ends_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
