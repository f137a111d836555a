#include "guest-agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/agent_int.h"
#include "guest-agent/step.h"

/* Stop reading the steps' pipes while this much is waiting for the channel:
 * the pipes then fill and the step blocks, which is the backpressure. */
#define OUT_HIGH_WATER (1u << 20)

void agent_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runvm-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

uint64_t agent_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void agent_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int agent_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* ---- sending ------------------------------------------------------------ */

/* Moves the message built in scratch into the output queue. */
void agent_queue_scratch(struct agent *a, int built)
{
    if (built == 0 &&
        msg_slip_append(&a->out, a->scratch.data, a->scratch.len) < 0)
        built = -ENOMEM;
    if (built < 0 && !a->fatal) {
        agent_log("cannot queue a message: %s", strerror(-built));
        a->fatal = built;
    }
    msg_buf_reset(&a->scratch);
}

void agent_send_error(struct agent *a, uint32_t id, uint32_t code,
                      const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    agent_queue_scratch(a, msg_build_error(&a->scratch, id, code, text));
}

static struct msg_bytes opt_str(const char *s)
{
    return s ? (struct msg_bytes){(const uint8_t *)s, (uint32_t)strlen(s)}
             : (struct msg_bytes){NULL, 0};
}

/* HELLO: at start with id 0, and answering ANNOUNCE with its id. SOURCE
 * stays in it for the host's information; a FILE without a name gets it
 * here anyway. */
static void send_hello(struct agent *a, uint32_t id)
{
    struct msg_hello h = {
        .agent_version = opt_str(AGENT_VERSION),
        .lang = opt_str(a->lang.lang),
        .toolchain = opt_str(a->lang.toolchain),
        .source = opt_str(a->lang.source),
    };
    agent_queue_scratch(a, msg_build_hello(&a->scratch, id, &h));
}

/* Writes what the channel takes now. */
static void flush_out(struct agent *a)
{
    while (a->out.len && !a->channel_closed) {
        ssize_t n = write(a->cfg.channel_fd, a->out.data, a->out.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            agent_log("channel write: %s", n < 0 ? strerror(errno) : "closed");
            a->channel_closed = true;
            return;
        }
        msg_buf_consume(&a->out, (size_t)n);
    }
}

/* Blocks up to timeout_ms until the output queue is written. */
static void flush_out_blocking(struct agent *a, int timeout_ms)
{
    uint64_t deadline = agent_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        flush_out(a);
        uint64_t now = agent_now_ms();
        if (!a->out.len || a->channel_closed || now >= deadline)
            return;
        struct pollfd p = {.fd = a->cfg.channel_fd, .events = POLLOUT};
        poll(&p, 1, (int)(deadline - now));
    }
}

/* ---- requests ----------------------------------------------------------- */

static void handle_run(struct agent *a, const struct msg_view *v)
{
    struct job *j = &a->job;
    int r;

    if (j->active) {
        agent_send_error(a, v->id, MSG_ERR_BUSY, "RUN %u is still running",
                         j->id);
        return;
    }
    job_clear(j);
    j->id = v->id;
    j->payload = malloc(v->len ? v->len : 1);
    if (!j->payload) {
        agent_send_error(a, v->id, MSG_ERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(j->payload, v->payload, v->len);
    struct msg_view copy = *v;
    copy.payload = j->payload;
    if (msg_decode_run(&copy, &j->run) < 0) {
        agent_send_error(a, v->id, MSG_ERR_BAD_REQUEST,
                         "malformed RUN payload");
        goto drop;
    }
    if (job_name_files(a, j) < 0)
        goto drop;
    if (!(j->run.flags & MSG_RUN_REUSE_WORKDIR) || !a->workdir[0]) {
        r = workdir_make(a);
        if (r < 0) {
            agent_send_error(
                a, v->id, MSG_ERR_INTERNAL,
                "fresh work dir in %s (and empty %s): %s", a->cfg.work_root,
                a->cfg.tmp_root ? a->cfg.tmp_root : "tmp", strerror(-r));
            goto drop;
        }
    }
    if (job_resolve(a, j) != 0)
        goto drop;
    for (size_t i = 0; i < j->run.nfiles; i++) {
        r = workdir_write_file(a, &j->run.files[i]);
        if (r < 0) {
            const struct msg_file *f = &j->run.files[i];
            agent_send_error(a, v->id, MSG_ERR_INTERNAL,
                             "writing file %zu (%.*s): %s", i, (int)f->name.len,
                             (const char *)f->name.p,
                             r == -EISDIR ? "an earlier step left a directory "
                                            "of that name; a RUN without "
                                            "reuse starts afresh"
                                          : strerror(-r));
            goto drop;
        }
    }
    msg_buf_append(&j->stdin_pending, j->run.stdin_data.p,
                   j->run.stdin_data.len);
    j->stdin_eof = !(j->run.flags & MSG_RUN_STDIN_OPEN);
    j->active = true;
    r = job_step_start(a, j->has_build ? MSG_PHASE_BUILD : MSG_PHASE_RUN);
    if (r < 0) {
        agent_send_error(a, v->id, MSG_ERR_INTERNAL, "starting the step: %s",
                         strerror(-r));
        goto drop;
    }
    return;
drop:
    job_end(a);
}

static void handle_stdin(struct agent *a, const struct msg_view *v)
{
    struct job *j = &a->job;
    struct msg_stdin s;

    if (msg_decode_stdin(v, &s) < 0) {
        agent_send_error(a, v->id, MSG_ERR_BAD_REQUEST,
                         "malformed STDIN payload");
        return;
    }
    if (!j->active || j->id != v->id) {
        agent_send_error(a, v->id, MSG_ERR_NO_RUN, "no active RUN %u", v->id);
        return;
    }
    if (j->stdin_eof)
        return; /* after EOF, or the program closed its stdin */
    if (j->stdin_pending.len + s.data.len > AGENT_MAX_STDIN_PENDING) {
        agent_send_error(a, v->id, MSG_ERR_BAD_REQUEST,
                         "stdin backlog over %u bytes; data dropped",
                         AGENT_MAX_STDIN_PENDING);
        return;
    }
    msg_buf_append(&j->stdin_pending, s.data.p, s.data.len);
    if (j->stdin_pending.err) {
        agent_send_error(a, v->id, MSG_ERR_INTERNAL, "out of memory for stdin");
        msg_buf_reset(&j->stdin_pending);
    }
    if (s.eof)
        j->stdin_eof = true;
}

/* Whatever runs meanwhile goes on: HELLO says who we are, after the
 * host's entropy and time (if any) are in. A machine that could not be
 * made its own (two restored VMs sharing random bytes) answers with the
 * ERROR alone: the host is waiting for HELLO and does not run on it. */
static void handle_announce(struct agent *a, const struct msg_view *v)
{
    struct msg_announce an;
    if (msg_decode_announce(v, &an) < 0) {
        agent_send_error(a, v->id, MSG_ERR_BAD_REQUEST, "malformed ANNOUNCE");
        return;
    }
    char err[160];
    if ((an.entropy.len || an.has_realtime) && a->cfg.refresh &&
        a->cfg.refresh(&an, err, sizeof(err)) < 0) {
        agent_send_error(a, v->id, MSG_ERR_INTERNAL, "%s", err);
        return;
    }
    send_hello(a, v->id);
}

static void on_msg(void *opaque, const struct msg_view *v)
{
    struct agent *a = opaque;

    switch (v->type) {
    case MSG_RUN: handle_run(a, v); break;
    case MSG_STDIN: handle_stdin(a, v); break;
    case MSG_SHUTDOWN: a->shutdown = true; break;
    case MSG_ANNOUNCE: handle_announce(a, v); break;
    case MSG_ERROR: break; /* never answer an ERROR: no ping-pong */
    default:
        agent_send_error(a, v->id, MSG_ERR_UNKNOWN_TYPE,
                         "message type %u not handled by the agent", v->type);
    }
}

static void on_drop(void *opaque, int err)
{
    struct agent *a = opaque;
    agent_send_error(a, 0, MSG_ERR_BAD_FRAME,
                     "dropped a frame: %s (%llu so far)", strerror(-err),
                     (unsigned long long)msg_reader_dropped(&a->reader));
}

/* ---- life cycle --------------------------------------------------------- */

struct agent *agent_new(const struct agent_config *cfg)
{
    struct agent *a = calloc(1, sizeof(*a));
    char err[300];
    sigset_t set;

    if (!a) {
        agent_log("out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    a->sigfd = -1;
    a->ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (a->ncpus < 1)
        a->ncpus = 1;
    job_clear(&a->job);
    msg_buf_init(&a->out);
    msg_buf_init(&a->scratch);

    int r = langconf_load(cfg->lang_conf, &a->lang, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        agent_log("%s (running without a language config)", err);

    /* SIGCHLD through a signalfd so reaping is one more event; SIGPIPE off
     * so a closed channel or stdin pipe is an error return. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0) {
        agent_log("signalfd: %s", strerror(errno));
        goto fail;
    }
    /* Orphans of a step come back to us, so a group can be reaped whole. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (agent_set_nonblock(cfg->channel_fd) < 0) {
        agent_log("channel fd %d: %s", cfg->channel_fd, strerror(errno));
        goto fail;
    }
    if (msg_reader_init(&a->reader, on_msg, on_drop, a) < 0) {
        agent_log("out of memory");
        goto fail;
    }

    send_hello(a, 0);
    if (a->fatal)
        goto fail;
    return a;
fail:
    agent_free(a);
    return NULL;
}

int agent_run(struct agent *a)
{
    struct job *j = &a->job;

    while (!a->shutdown && !a->channel_closed && !a->fatal) {
        struct pollfd p[5];
        int n = 0, ich = -1, isig, iout = -1, ierr = -1, iin = -1;
        int timeout = -1;

        ich = n;
        p[n++] = (struct pollfd){a->cfg.channel_fd,
                                 POLLIN | (a->out.len ? POLLOUT : 0), 0};
        isig = n;
        p[n++] = (struct pollfd){a->sigfd, POLLIN, 0};
        if (j->active && j->pid > 0) {
            bool room = a->out.len < OUT_HIGH_WATER;
            if (j->out_fd >= 0 && room) {
                iout = n;
                p[n++] = (struct pollfd){j->out_fd, POLLIN, 0};
            }
            if (j->err_fd >= 0 && room) {
                ierr = n;
                p[n++] = (struct pollfd){j->err_fd, POLLIN, 0};
            }
            if (j->in_fd >= 0 && j->stdin_pending.len) {
                iin = n;
                p[n++] = (struct pollfd){j->in_fd, POLLOUT, 0};
            }
            timeout = job_step_poll_timeout(a);
        }

        int r = poll(p, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR) {
            agent_log("poll: %s", strerror(errno));
            return -errno;
        }
        if (r < 0)
            continue;

        job_step_check_time(a);
        if (p[isig].revents)
            job_step_reap(a);
        if (iout >= 0 && p[iout].revents &&
            job_step_pump_output(a, j->out_fd, MSG_STREAM_STDOUT) == 0)
            agent_close_fd(&j->out_fd);
        if (ierr >= 0 && p[ierr].revents &&
            job_step_pump_output(a, j->err_fd, MSG_STREAM_STDERR) == 0)
            agent_close_fd(&j->err_fd);
        if (iin >= 0 && p[iin].revents)
            job_step_pump_stdin(a);
        if (p[ich].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got =
                read(a->cfg.channel_fd, a->readbuf, sizeof(a->readbuf));
            if (got > 0)
                msg_reader_feed(&a->reader, a->readbuf, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                a->channel_closed = true;
        }
        /* New stdin may have arrived, or EOF with nothing pending. */
        if (j->active && j->pid > 0)
            job_step_pump_stdin(a);
        if (j->active && j->pid > 0 && j->reaped)
            job_step_finish(a);
        flush_out(a);
    }
    if (a->job.active)
        job_step_kill(a);
    if (!a->channel_closed)
        flush_out_blocking(a, 2000);
    if (a->fatal)
        return a->fatal;
    return a->shutdown ? AGENT_END_SHUTDOWN : AGENT_END_CHANNEL_CLOSED;
}

void agent_report_fatal(struct agent *a, const char *message)
{
    agent_send_error(a, 0, MSG_ERR_INTERNAL, "agent failed: %s", message);
    flush_out_blocking(a, 1000);
}

void agent_free(struct agent *a)
{
    if (!a)
        return;
    if (a->job.active)
        job_step_kill(a);
    job_clear(&a->job);
    (void)workdir_remove(a);
    msg_reader_free(&a->reader);
    msg_buf_free(&a->out);
    msg_buf_free(&a->scratch);
    langconf_free(&a->lang);
    if (a->sigfd >= 0)
        close(a->sigfd);
    free(a);
}
