#include "api/run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/request.h"
#include "api/server_int.h"
#include "core/clock.h"
#include "protocol/version.h"
#include "session/event.h"

void api_run_init(struct api_run *r)
{
    *r = (struct api_run){.listen_fd = -1, .fd = -1};
    msg_buf_init(&r->events);
}

/* ---- output socket ------------------------------------------------------ */

void api_run_free(struct api_server *s)
{
    struct api_run *r = &s->run;
    if (r->listen_fd >= 0) {
        evloop_del(s->loop, r->listen_fd);
        close(r->listen_fd);
        r->listen_fd = -1;
    }
    if (r->path[0]) {
        unlink(r->path);
        r->path[0] = '\0';
    }
    if (r->fd >= 0) {
        evloop_del(s->loop, r->fd);
        close(r->fd);
        r->fd = -1;
    }
    msg_buf_free(&r->events);
}

static void out_close(struct api_server *s)
{
    struct api_run *r = &s->run;
    evloop_del(s->loop, r->fd);
    close(r->fd);
    r->fd = -1;
}

static void out_flush(struct api_server *s)
{
    struct api_run *r = &s->run;
    if (r->fd < 0)
        return;
    while (r->events.len > 0) {
        ssize_t n = send(r->fd, r->events.data, r->events.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)evloop_mod(s->loop, r->fd, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            /* The reader left: the run goes on, its events go nowhere. */
            out_close(s);
            msg_buf_reset(&r->events);
            return;
        }
        msg_buf_consume(&r->events, (size_t)n);
    }
    (void)evloop_mod(s->loop, r->fd, 0);
    if (r->done)
        api_run_free(s);
}

static void out_writable(void *opaque, uint32_t events)
{
    (void)events;
    out_flush(opaque);
}

static void out_accept(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    struct api_run *r = &s->run;
    (void)events;
    int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    /* One reader per run: stop listening and remove the path now. */
    evloop_del(s->loop, r->listen_fd);
    close(r->listen_fd);
    r->listen_fd = -1;
    unlink(r->path);
    r->path[0] = '\0';
    r->fd = fd;
    if (evloop_add(s->loop, fd, 0, out_writable, s) < 0) {
        close(fd);
        r->fd = -1;
        return;
    }
    out_flush(s);
}

/* Sends what it can of the events queued; holds the rest up to
 * cfg.max_buffered. Past it they are dropped, and a reader that is
 * connected but does not read is cut off: runvm's memory is bounded
 * whatever the program prints and whoever reads it. */
static void emit(struct api_server *s)
{
    struct api_run *r = &s->run;
    out_flush(s);
    if (r->events.len <= s->cfg.max_buffered && !r->gone)
        return;
    if (r->fd >= 0) {
        s->stalled_readers++;
        out_close(s);
        r->gone = true; /* no one can connect again: drop from now on */
    }
    msg_buf_reset(&r->events);
}

/* ---- POST /start -------------------------------------------------------- */

/* Whether spec (a request's "lang") names the language version this
 * process serves: its name or an alias, and a version that
 * version_match takes for the served one (go@1 is served by go@1.19), or
 * none when the served one is the language's default; if not, why. */
static bool serves(const struct api_server *s, const char *spec, char *why,
                   size_t len)
{
    const struct session_expect *x = &s->cfg.expect;
    struct lang_spec ls;
    if (!lang_spec_parse(spec, strlen(spec), &ls)) {
        snprintf(why, len,
                 "\"lang\": \"%.60s\" is not a language: NAME or "
                 "NAME@VERSION (go, go@1.24, python@3)",
                 spec);
        return false;
    }
    const char *name = ls.name;
    const char *want = ls.version[0] ? ls.version : NULL;
    /* An alias names its language; no version, its default. */
    const struct catalog *c = s->cfg.catalog;
    const char *def = NULL;
    for (size_t i = 0; c && i < c->n; i++)
        if (!strcmp(c->e[i].lang, name) || catalog_has_alias(&c->e[i], name)) {
            snprintf(ls.name, sizeof(ls.name), "%s", c->e[i].lang);
            break;
        }
    for (size_t i = 0; c && i < c->n; i++)
        if (!strcmp(c->e[i].lang, name) && c->e[i].is_default)
            def = c->e[i].version;
    bool ok = x->lang && !strcmp(name, x->lang) &&
              (want ? x->version && version_match(want, x->version)
                    : !x->version || !def || !strcmp(def, x->version));
    if (!ok)
        snprintf(why, len,
                 "this process serves %s%s%s, not %s: one API-mode runvm "
                 "is one language version; start another with --lang %s",
                 x->lang ? x->lang : "?", x->version ? "@" : "",
                 x->version ? x->version : "", spec, spec);
    return ok;
}

/* Starts the run c asks for, the agent being ready. */
static void start(struct api_server *s, struct httpd_conn *c,
                  const struct http_request *req)
{
    if (s->session.state == SESSION_RUNNING) {
        httpd_reply_error(c, 409,
                          "a run is in progress; wait for its exit event");
        return;
    }
    struct api_request r;
    const char *why = NULL;
    int status =
        api_request_parse(&r, req->content_type, req->body, req->content_length,
                          s->cfg.default_run_ms, s->cfg.default_build_ms, &why);
    char lang_why[1024];
    if (!status && r.lang && !serves(s, r.lang, lang_why, sizeof(lang_why))) {
        status = 400;
        why = lang_why;
    }
    if (status) {
        api_request_free(&r);
        httpd_reply_error(c, status, "%s", why);
        return;
    }
    if (s->cfg.fresh_vms && s->session.runs > 0 &&
        !(r.run.flags & MSG_RUN_REUSE_WORKDIR)) {
        /* A new submission: a fresh VM, not the last one's (the caller
         * makes it; on_ready starts this request on it). */
        api_request_free(&r);
        s->pending_start = c;
        s->renewing = true;
        httpd_hold(c);
        vm_pause(s->vm);
        return;
    }
    /* The next run ends the last one's output socket; a refused request
     * (above) is not a run and leaves it to its reader (docs/cli.md). */
    api_run_free(s);

    struct api_run *run = &s->run;
    char err[256];
    snprintf(run->path, sizeof(run->path), "%.3000s/run-%" PRIu64 ".sock",
             s->rundir, s->runs + 1);
    int ret = run->listen_fd = httpd_listen_unix(run->path, err, sizeof(err));
    if (ret < 0)
        run->path[0] = '\0';
    else if ((ret = evloop_add(s->loop, run->listen_fd, EPOLLIN, out_accept,
                               s)) < 0)
        snprintf(err, sizeof(err), "%s", strerror(-ret));
    if (ret < 0) {
        api_run_free(s);
        api_request_free(&r);
        httpd_reply_error(c, 500, "output socket: %s", err);
        return;
    }
    /* The RUN is built and queued here: r may go after it. */
    ret = session_run(&s->session, &r.run);
    api_request_free(&r);
    if (ret < 0) {
        api_run_free(s);
        if (ret == -EMSGSIZE)
            httpd_reply_error(c, 413,
                              "request too large for the agent (8 MiB)");
        else
            httpd_reply_error(c, 500, "%s", strerror(-ret));
        return;
    }
    s->runs++;
    run->done = false;
    run->gone = false;
    struct msg_buf b;
    msg_buf_init(&b);
    char head[64];
    snprintf(head, sizeof(head),
             "{\"id\":%" PRIu64 ",\"output_socket\":", s->runs);
    msg_buf_append(&b, head, strlen(head));
    event_json_string(&b, run->path, strlen(run->path));
    msg_buf_append(&b, "}", 2);
    httpd_reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}

void api_run_post_start(struct api_server *s, struct httpd_conn *c,
                        const struct http_request *req)
{
    if (s->stopping) {
        httpd_reply_error(c, 503, "the VM is shutting down");
        return;
    }
    if (s->session.state == SESSION_BOOTING || s->renewing) {
        if (s->pending_start) {
            httpd_reply_error(c, 409,
                              "a run is already waiting for the VM to boot");
            return;
        }
        s->pending_start = c; /* answered at HELLO */
        httpd_hold(c);
        return;
    }
    start(s, c, req);
}

/* Ends the run in progress, if any (false: none): its last event (a
 * failure's exit event when why) is queued and sent what can be. */
static bool end_run(struct api_server *s, int status, const char *why)
{
    if (s->session.runs == 0 || s->run.done)
        return false;
    if (why)
        event_failure(&s->run.events, status, why);
    s->run.done = true;
    emit(s);
    return true;
}

void api_run_vm_stopped(struct api_server *s, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "the VM stopped during the run: %s", why);
    (void)end_run(s, RUNVM_EXIT_INFRA, msg);
    if (s->pending_start) {
        struct httpd_conn *c = s->pending_start;
        s->pending_start = NULL;
        httpd_reply_error(c, 503, "the VM stopped: %s", why);
    }
}

/* ---- the session's events ----------------------------------------------- */

static void on_ready(void *opaque, const struct agent_hello *h)
{
    struct api_server *s = opaque;
    (void)h;
    s->t_hello_ns = clock_now_ns();
    if (s->cfg.pause_at_ready) {
        /* Once: the snapshot of this VM, then api_server_go_on. */
        s->cfg.pause_at_ready = false;
        if (version_cmp(h->agent_version, MSG_AGENT_REFRESH_VERSION) >= 0) {
            s->paused = true;
            vm_pause(s->vm);
            return;
        }
        fprintf(stderr,
                "runvm: the image's agent (%.20s) is older than %s and "
                "would not reseed a restored VM's RNG: no snapshot, and "
                "every submission runs in this one VM\n",
                h->agent_version, MSG_AGENT_REFRESH_VERSION);
        s->cfg.fresh_vms = false;
    }
    api_run_ready(s);
}

void api_run_ready(struct api_server *s)
{
    if (s->pending_start) {
        struct httpd_conn *c = s->pending_start;
        s->pending_start = NULL;
        start(s, c, &c->req);
    }
}

static void on_output(void *opaque, const struct msg_output *o)
{
    struct api_server *s = opaque;
    event_output(&s->run.events, o);
    emit(s);
}

static void on_exit_msg(void *opaque, const struct msg_exit *e)
{
    struct api_server *s = opaque;
    event_exit(&s->run.events, e);
    emit(s);
}

static void on_done(void *opaque, int status, const char *why)
{
    struct api_server *s = opaque;
    bool running = end_run(s, status, why);
    if (s->session.state == SESSION_FAILED) {
        /* The image serves another language, or its guest stopped
         * keeping a run's limits: it runs nothing more. */
        fprintf(stderr, "runvm: %s\n", why);
        s->stopping = true;
        vm_request_stop(
            s->vm, VM_STOP_ERROR,
            running ? "run past its deadline" : "wrong language image", 0);
    }
}

static void on_closed(void *opaque, int err)
{
    struct api_server *s = opaque;
    (void)err;
    if (!s->shutdown_requested) {
        s->stopping = true;
        vm_request_stop(s->vm, VM_STOP_ERROR, "agent channel closed", 0);
    }
}

/* PUT /shutdown's grace passed without the guest powering off. */
static void on_power_off_overdue(void *opaque)
{
    struct api_server *s = opaque;
    vm_request_stop(s->vm, VM_STOP_GUEST, "PUT /shutdown", 0);
}

const struct session_sink api_run_sink = {
    .ready = on_ready,
    .output = on_output,
    .exit = on_exit_msg,
    .done = on_done,
    .closed = on_closed,
    .power_off_overdue = on_power_off_overdue,
};
