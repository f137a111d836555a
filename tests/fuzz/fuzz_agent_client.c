/* libFuzzer target: the host side of the agent protocol
 * (session/agent_client.c) reading what a hostile or broken agent sends
 * through a socketpair, while the host starts runs, sends stdin, ANNOUNCE
 * and SHUTDOWN. The callbacks are a sink that only checks what the client
 * promises its callers (session/agent_client.h).
 *
 * The input is operations, one byte each (mod 10) and their arguments:
 *   0 raw     u8 n, n bytes: channel bytes as they are (SLIP garbage,
 *             partial frames)
 *   1 frame   u8 type, u16 flags, u8 id, u8 n, n payload bytes: a message
 *             framed by the harness (tests/fuzz/frame.h)
 *   2 typed   u8 kind, u8 id, fields: HELLO, OUTPUT, EXIT or ERROR built
 *             by protocol/msg_build.c
 *   3 run     u8: agent_client_run (bit 0: stdin stays open)
 *   4 stdin   u8 flags, u8 n, n bytes: agent_client_stdin
 *   5 announce, 6 shutdown
 *   7 drain   the agent reads what the host sent: every frame must parse
 *             and be a host-to-agent message
 *   8 eof     the agent's end stops writing
 *   9 pump    the event loop delivers what is ready
 * An id byte picks 0, the current RUN's id, the one after it, the last
 * ANNOUNCE's, or (4 and up) itself. Channel bytes are delivered at once. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session/agent_client.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/frame.h"
#include "tests/fuzz/pump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the client told its caller, and what the caller did. */
struct sink {
    struct agent_client *c;
    bool running; /* a RUN was started and has not ended */
    bool closed;
    uint32_t run_id, announce_id;
};

static void check_text(const char *s)
{
    size_t n = strlen(s);
    check_that(n < AGENT_CLIENT_STR_MAX, "a HELLO field overflows");
    for (size_t i = 0; i < n; i++)
        check_that((unsigned char)s[i] >= 0x20 && s[i] != 0x7f,
                   "a HELLO field is not printable");
}

static void sink_hello(void *opaque, const struct agent_hello *h)
{
    struct sink *s = opaque;
    check_that(!s->closed, "HELLO after closed");
    check_text(h->agent_version);
    check_text(h->lang);
    check_text(h->toolchain);
    check_text(h->source);
}

static void sink_output(void *opaque, const struct msg_output *o)
{
    struct sink *s = opaque;
    (void)o;
    check_that(!s->closed && s->running, "OUTPUT outside a RUN");
}

static void sink_exit(void *opaque, const struct msg_exit *e)
{
    struct sink *s = opaque;
    check_that(!s->closed && s->running, "EXIT outside a RUN");
    if (e->status & MSG_EXIT_FINAL)
        s->running = false;
}

static void sink_error(void *opaque, const struct msg_error *e)
{
    struct sink *s = opaque;
    (void)e;
    check_that(!s->closed && s->running, "ERROR outside a RUN");
    s->running = false;
}

static void sink_closed(void *opaque, int err)
{
    struct sink *s = opaque;
    check_that(!s->closed, "closed twice");
    check_that(err < 0, "closed without an error");
    s->closed = true;
    s->running = false;
}

static const struct agent_client_ops sink_ops = {
    .hello = sink_hello,
    .output = sink_output,
    .exit = sink_exit,
    .error = sink_error,
    .closed = sink_closed,
};

static uint32_t pick_id(const struct sink *s, uint8_t b)
{
    switch (b) {
    case 0: return 0;
    case 1: return s->run_id;
    case 2: return s->run_id + 1;
    case 3: return s->announce_id;
    default: return b;
    }
}

/* A string field of up to 255 bytes from the input. */
static struct msg_bytes field(struct cursor *in)
{
    const uint8_t *p;
    size_t n = cursor_bytes(in, cursor_u8(in), &p);
    return (struct msg_bytes){p, (uint32_t)n};
}

static void typed(struct sink *s, struct cursor *in, struct msg_buf *m)
{
    uint8_t kind = cursor_u8(in);
    uint32_t id = pick_id(s, cursor_u8(in));
    switch (kind % 4) {
    case 0: {
        struct msg_hello h = {field(in), field(in), field(in), field(in)};
        (void)msg_build_hello(m, id, &h);
        break;
    }
    case 1: {
        uint8_t phase = cursor_u8(in), stream = cursor_u8(in);
        struct msg_bytes b = field(in);
        (void)msg_build_output(m, id, phase, stream, b.p, b.len);
        break;
    }
    case 2: {
        uint8_t bits = cursor_u8(in);
        struct msg_exit e = {
            .phase = bits & 1,
            .exited = bits & 2,
            .signaled = bits & 4,
            .code = cursor_u8(in),
            .signal = cursor_u8(in),
            .status = bits >> 4,
            .wall_ms = cursor_u32(in),
        };
        (void)msg_build_exit(m, id, &e);
        break;
    }
    default: {
        uint32_t code = cursor_u8(in);
        struct msg_bytes b = field(in);
        char text[256];
        memcpy(text, b.p, b.len);
        text[b.len] = '\0';
        (void)msg_build_error(m, id, code, text);
        break;
    }
    }
}

/* The agent's end reads what the host sent. */
static void agent_got(void *opaque, const struct msg_view *v)
{
    struct sink *s = opaque;
    struct msg_run run;
    struct msg_stdin in;
    switch (v->type) {
    case MSG_RUN:
        check_that(msg_decode_run(v, &run) == 0, "the host sent a bad RUN");
        break;
    case MSG_STDIN:
        check_that(msg_decode_stdin(v, &in) == 0, "the host sent bad STDIN");
        /* Ids only grow: a RUN's STDIN carries one already handed out. */
        check_that(v->id != 0 && v->id <= s->run_id, "STDIN for no RUN");
        break;
    case MSG_SHUTDOWN:
    case MSG_ANNOUNCE: break;
    default: check_that(false, "the host sent an agent's message");
    }
}

static void agent_dropped(void *opaque, int err)
{
    (void)opaque;
    (void)err;
    check_that(false, "the host sent a frame that does not parse");
}

static void drain(int fd, struct msg_reader *r)
{
    uint8_t buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        msg_reader_feed(r, buf, (size_t)n);
}

static void host_run(struct sink *s, uint8_t flags)
{
    static const char src[] = "int main(void) { return 0; }\n";
    static const char *const argv[] = {"./a.out", "x", NULL};
    struct agent_file file = {.data = src, .len = sizeof(src) - 1};
    struct agent_request req = {
        .files = &file,
        .nfiles = 1,
        .run_argv = argv,
        .stdin_open = flags & 1,
        .flags = flags >> 1,
        .limits = {.wall_ms = 1000},
    };
    struct agent_client *c = s->c;
    int want = c->closed        ? -EPIPE
               : !c->have_hello ? -EAGAIN
               : c->run_active  ? -EBUSY
                                : 0;
    uint32_t id;
    int ret = agent_client_run(c, &req, &id);
    /* Sending may find the channel gone just now. */
    check_that(ret == want || (want == 0 && ret == -EPIPE && c->closed),
               "agent_client_run answered out of turn");
    if (ret == 0) {
        s->running = true;
        s->run_id = id;
    }
}

static void host_stdin(struct sink *s, struct cursor *in)
{
    uint8_t flags = cursor_u8(in);
    const uint8_t *p;
    size_t n = cursor_bytes(in, cursor_u8(in), &p);
    bool closed = s->c->closed, active = s->c->run_active;
    int ret = agent_client_stdin(s->c, p, n, flags & 1);
    check_that(ret == (closed    ? -EPIPE
                       : !active ? -ENOENT
                                 : 0),
               "agent_client_stdin answered out of turn");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct evloop loop;
    if (loop.epfd == 0 && evloop_init(&loop) < 0)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    struct agent_client c;
    struct sink s = {.c = &c};
    struct msg_reader agent;
    check_that(agent_client_init(&c, &loop, sv[0], &sink_ops, &s) == 0 &&
                   msg_reader_init(&agent, agent_got, agent_dropped, &s) == 0,
               "setting up the channel failed");
    struct msg_buf wire;
    msg_buf_init(&wire);
    struct cursor in;
    cursor_init(&in, data, size);
    while (!cursor_empty(&in)) {
        uint8_t op = cursor_u8(&in);
        const uint8_t *p;
        size_t n;
        msg_buf_reset(&wire);
        switch (op % 10) {
        case 0:
            n = cursor_bytes(&in, cursor_u8(&in), &p);
            if (n)
                msg_buf_append(&wire, p, n);
            break;
        case 1: {
            uint8_t type = cursor_u8(&in);
            uint16_t flags = cursor_u16(&in);
            uint32_t id = pick_id(&s, cursor_u8(&in));
            n = cursor_bytes(&in, cursor_u8(&in), &p);
            frame_put(&wire, type % 10, flags, id, p, n);
            break;
        }
        case 2: {
            struct msg_buf m;
            msg_buf_init(&m);
            typed(&s, &in, &m);
            if (!m.err)
                (void)msg_slip_append(&wire, m.data, m.len);
            msg_buf_free(&m);
            break;
        }
        case 3: host_run(&s, cursor_u8(&in)); break;
        case 4: host_stdin(&s, &in); break;
        case 5:
            if (agent_client_announce(&c, NULL, &s.announce_id) < 0)
                check_that(c.closed, "ANNOUNCE refused on an open channel");
            break;
        case 6:
            if (agent_client_shutdown(&c) < 0)
                check_that(c.closed, "SHUTDOWN refused on an open channel");
            break;
        case 7: drain(sv[1], &agent); break;
        case 8: shutdown(sv[1], SHUT_WR); break;
        case 9: break;
        }
        if (wire.len)
            (void)send(sv[1], wire.data, wire.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        pump_ready(&loop);
        check_that(s.running == c.run_active,
                   "the caller's RUN and the client's disagree");
        check_that(s.closed == c.closed, "closed without telling");
    }
    drain(sv[1], &agent);
    msg_buf_free(&wire);
    msg_reader_free(&agent);
    agent_client_free(&c);
    close(sv[0]);
    close(sv[1]);
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        check_that(loop.handlers[i].fd == -1,
                   "the client left its fd on the event loop");
    return 0;
}
