#include "session/session.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "protocol/version.h"
#include "session/event.h"

/* p[0..n) as text safe to show on a terminal: printable ASCII kept, every
 * other byte (escape sequences, C1 controls, newlines) as \xNN; cut to
 * fit len with its NUL. What the guest says reaches users' terminals. */
static const char *printable(char *out, size_t len, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 <= len; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", b[i]);
    }
    out[o < len ? o : len - 1] = '\0';
    return out;
}

static void watchdog_disarm(struct session *s)
{
    if (s->watchdog_fd < 0)
        return;
    evloop_del(s->client.loop, s->watchdog_fd);
    close(s->watchdog_fd);
    s->watchdog_fd = -1;
}

/* Ends the current run once, as a failure. */
static void fail_run(struct session *s, const char *why)
{
    if (s->state != SESSION_RUNNING)
        return;
    watchdog_disarm(s);
    s->state = s->client_up ? SESSION_READY : SESSION_CLOSED;
    if (s->sink->done)
        s->sink->done(s->opaque, RUNVM_EXIT_INFRA, why);
}

/* The session cannot serve this agent: FAILED, and why. */
static void refuse(struct session *s, const char *why)
{
    s->state = SESSION_FAILED;
    if (s->sink->done)
        s->sink->done(s->opaque, RUNVM_EXIT_INFRA, why);
}

static void on_hello(void *opaque, const struct agent_hello *h)
{
    struct session *s = opaque;
    /* A later HELLO (an ANNOUNCE's answer) keeps the state it finds. */
    if (s->state != SESSION_BOOTING)
        return;
    /* A restored agent is ready once it has made the VM its own. */
    if (s->resuming && h->id != s->announce_id)
        return;
    /* The client made HELLO's strings printable. */
    char why[512];
    if (version_cmp(h->agent_version, MSG_AGENT_MIN_VERSION) < 0) {
        snprintf(why, sizeof(why),
                 "the image's agent is version %.20s, older than this runvm "
                 "needs (%s): rebuild the image (make images%s%.40s)",
                 h->agent_version[0] ? h->agent_version : "(none)",
                 MSG_AGENT_MIN_VERSION, s->expect.lang ? " IMAGE_LANGS=" : "",
                 s->expect.lang ? s->expect.lang : "");
        refuse(s, why);
        return;
    }
    if (s->expect.lang && strcmp(h->lang, s->expect.lang) != 0) {
        snprintf(why, sizeof(why),
                 "the image's agent serves language "
                 "\"%.60s\", not \"%.60s\"",
                 h->lang, s->expect.lang);
        refuse(s, why);
        return;
    }
    char found[32];
    if (s->expect.version &&
        (!version_of_toolchain(h->toolchain, found, sizeof(found)) ||
         !version_match(s->expect.version, found))) {
        snprintf(why, sizeof(why),
                 "the image for %.40s@%.20s is stale: its toolchain is "
                 "\"%.80s\"; rebuild it (make images "
                 "IMAGE_LANGS=%.40s@%.20s)",
                 h->lang, s->expect.version, h->toolchain, h->lang,
                 s->expect.version);
        refuse(s, why);
        return;
    }
    s->state = SESSION_READY;
    if (s->sink->ready)
        s->sink->ready(s->opaque, h);
}

static void on_output(void *opaque, const struct msg_output *o)
{
    struct session *s = opaque;
    if (s->state != SESSION_RUNNING)
        return;
    /* The agent caps each step's output; one that does not is not let
     * make the host write more than the run asked for. */
    struct msg_output cut = *o;
    if (cut.data.len > s->output_budget) {
        s->output_dropped += cut.data.len - s->output_budget;
        cut.data.len = (uint32_t)s->output_budget;
    }
    s->output_budget -= cut.data.len;
    if (cut.data.len && s->sink->output)
        s->sink->output(s->opaque, &cut);
}

static void on_exit_msg(void *opaque, const struct msg_exit *e)
{
    struct session *s = opaque;
    if (s->state != SESSION_RUNNING)
        return;
    if (s->sink->exit)
        s->sink->exit(s->opaque, e);
    if (!(e->status & MSG_EXIT_FINAL))
        return;
    watchdog_disarm(s);
    s->state = SESSION_READY;
    if (s->sink->done)
        s->sink->done(s->opaque, event_exit_status(e), NULL);
}

static void on_error(void *opaque, const struct msg_error *e)
{
    struct session *s = opaque;
    char why[256], text[201];
    printable(text, sizeof(text), e->message.p, e->message.len);
    snprintf(why, sizeof(why), "agent error %u: %s", e->code, text);
    if (s->state == SESSION_BOOTING && s->resuming) {
        refuse(s, why);
        return;
    }
    fail_run(s, why);
}

static void on_closed(void *opaque, int err)
{
    struct session *s = opaque;
    s->client_up = false;
    char why[128];
    snprintf(why, sizeof(why),
             "agent channel closed before the run "
             "ended: %s",
             strerror(-err));
    fail_run(s, why);
    s->state = SESSION_CLOSED;
    if (s->sink->closed)
        s->sink->closed(s->opaque, err);
}

static const struct agent_client_ops session_ops = {
    .hello = on_hello,
    .output = on_output,
    .exit = on_exit_msg,
    .error = on_error,
    .closed = on_closed,
};

int session_init(struct session *s, struct evloop *loop, int fd,
                 const struct session_expect *expect,
                 const struct session_sink *sink, void *opaque)
{
    memset(s, 0, sizeof(*s));
    s->power_off_fd = -1;
    s->watchdog_fd = -1;
    if (expect)
        s->expect = *expect;
    s->sink = sink;
    s->opaque = opaque;
    s->state = SESSION_BOOTING;
    int ret = agent_client_init(&s->client, loop, fd, &session_ops, s);
    if (ret < 0)
        return ret;
    s->client_up = true;
    return 0;
}

int session_refresh(struct session *s)
{
    uint8_t rnd[64];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -EIO;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct msg_announce a = {
        .entropy = {rnd, sizeof(rnd)},
        .has_realtime = true,
        .realtime_ns =
            (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec,
    };
    int ret = agent_client_announce(&s->client, &a, &s->announce_id);
    explicit_bzero(rnd, sizeof(rnd));
    return ret;
}

int session_resume(struct session *s)
{
    s->resuming = true;
    return session_refresh(s);
}

void session_set_watchdog(struct session *s, unsigned int slack_ms)
{
    s->watchdog_slack_ms = slack_ms;
}

static void watchdog_expired(void *opaque, uint32_t events)
{
    struct session *s = opaque;
    (void)events;
    watchdog_disarm(s);
    if (s->state != SESSION_RUNNING)
        return;
    char why[160];
    snprintf(why, sizeof(why),
             "the run did not end within its time limits and %u ms more: "
             "the guest stopped keeping them",
             s->watchdog_slack_ms);
    s->state = SESSION_FAILED;
    if (s->sink->done)
        s->sink->done(s->opaque, RUNVM_EXIT_INFRA, why);
}

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v ? v : def;
}

/* The limits of the build step req may start, or NULL when it has none
 * (skipped, or an empty argv instead of the image's BUILD). */
static const struct msg_limits *build_limits(const struct agent_request *req)
{
    if ((req->flags & MSG_RUN_SKIP_BUILD) ||
        (req->build_argv && !req->build_argv[0]))
        return NULL;
    return req->has_build_limits ? &req->build_limits : &req->limits;
}

/* Arms the host-side deadline of the run req starts. */
static int watchdog_arm(struct session *s, const struct agent_request *req)
{
    if (!s->watchdog_slack_ms)
        return 0;
    const struct msg_limits *b = build_limits(req);
    uint64_t ms = or_default(req->limits.wall_ms, MSG_DEFAULT_WALL_MS) +
                  s->watchdog_slack_ms;
    if (b)
        ms += or_default(b->wall_ms, MSG_DEFAULT_WALL_MS);
    struct itimerspec its = {
        .it_value = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000},
    };
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int ret = timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
    if (!ret)
        ret = evloop_add(s->client.loop, fd, EPOLLIN, watchdog_expired, s);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    s->watchdog_fd = fd;
    return 0;
}

int session_run(struct session *s, const struct agent_request *req)
{
    switch (s->state) {
    case SESSION_BOOTING: return -EAGAIN;
    case SESSION_RUNNING: return -EBUSY;
    case SESSION_FAILED:
    case SESSION_CLOSED: return -EPIPE;
    case SESSION_READY: break;
    }
    int ret = watchdog_arm(s, req);
    if (ret < 0)
        return ret;
    ret = agent_client_run(&s->client, req, &s->run_id);
    if (ret < 0 || s->state != SESSION_READY) {
        watchdog_disarm(s);
        /* sending it may have closed the channel: no run began */
        return ret < 0 ? ret : -EPIPE;
    }
    s->state = SESSION_RUNNING;
    s->runs++;
    const struct msg_limits *b = build_limits(req);
    s->output_budget =
        or_default(req->limits.max_output, MSG_DEFAULT_MAX_OUTPUT) +
        (b ? or_default(b->max_output, MSG_DEFAULT_MAX_OUTPUT) : 0);
    return 0;
}

static void overdue(struct session *s)
{
    if (s->power_off_fd >= 0) {
        evloop_del(s->client.loop, s->power_off_fd);
        close(s->power_off_fd);
    }
    s->power_off_fd = -2; /* called: never again */
    if (s->sink->power_off_overdue)
        s->sink->power_off_overdue(s->opaque);
}

static void power_off_expired(void *opaque, uint32_t events)
{
    (void)events;
    overdue(opaque);
}

void session_power_off(struct session *s, unsigned int grace_ms)
{
    if (s->power_off_fd != -1)
        return; /* asked already */
    if (!s->client_up || agent_client_shutdown(&s->client) < 0) {
        overdue(s);
        return;
    }
    /* The agent syncs and reboots the guest; a guest that does not is
     * stopped (it runs nothing the host still needs). */
    struct itimerspec its = {
        .it_value = {grace_ms / 1000, (long)(grace_ms % 1000) * 1000000},
    };
    if (grace_ms == 0)
        its.it_value.tv_nsec = 1;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) < 0 ||
        evloop_add(s->client.loop, fd, EPOLLIN, power_off_expired, s) < 0) {
        if (fd >= 0)
            close(fd);
        overdue(s);
        return;
    }
    s->power_off_fd = fd;
}

const struct agent_hello *session_hello(const struct session *s)
{
    return &s->client.hello;
}

void session_free(struct session *s)
{
    if (!s->client.loop)
        return; /* zeroed, or session_init failed before the client */
    if (s->power_off_fd >= 0) {
        evloop_del(s->client.loop, s->power_off_fd);
        close(s->power_off_fd);
        s->power_off_fd = -1;
    }
    watchdog_disarm(s);
    agent_client_free(&s->client);
    s->client_up = false;
}
