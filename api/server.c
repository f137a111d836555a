#include "api/server.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/run.h"
#include "api/server_int.h"
#include "core/clock.h"
#include "session/event.h"
#include "session/session.h"
#include "vmm/agent_channel.h"

#define API_SHUTDOWN_GRACE_MS 2000

/* ---- connections and replies -------------------------------------------- */

static void conn_close(struct api_conn *c)
{
    if (c->fd < 0)
        return;
    if (c->s->pending_start == c)
        c->s->pending_start = NULL;
    evloop_del(c->s->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    msg_buf_free(&c->in);
    msg_buf_free(&c->out);
}

static void conn_flush(struct api_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n =
            send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)evloop_mod(c->s->loop, c->fd, EPOLLOUT);
            return;
        }
        if (n <= 0)
            break;
        msg_buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0 && c->drain) {
        /* A request refused before its body was read: closing now could
         * make the client's write fail before it reads the answer, so
         * discard what it still sends until it closes. */
        shutdown(c->fd, SHUT_WR);
        c->replying = false;
        (void)evloop_mod(c->s->loop, c->fd, EPOLLIN);
        return;
    }
    conn_close(c); /* one request per connection */
}

void api_reply(struct api_conn *c, int status, const char *body)
{
    char head[256];
    size_t len = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, http_reason(status), len + 1);
    if (status >= 400)
        c->s->rejected++;
    c->replying = true;
    /* The client has idle_ms to take its answer. */
    c->deadline_ns = clock_now_ns() + (uint64_t)c->s->cfg.idle_ms * 1000000;
    msg_buf_reset(&c->out);
    msg_buf_append(&c->out, head, (size_t)n);
    msg_buf_append(&c->out, body, len);
    msg_buf_append(&c->out, "\n", 1);
    conn_flush(c);
}

void api_reply_error(struct api_conn *c, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct msg_buf b;
    msg_buf_init(&b);
    msg_buf_append(&b, "{\"error\":", 9);
    event_json_string(&b, msg, strlen(msg));
    msg_buf_append(&b, "}", 2); /* with the NUL */
    api_reply(c, status, b.data ? (const char *)b.data : "{}");
    msg_buf_free(&b);
}

int api_listen_unix(const char *path, char *err, size_t err_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_len, "%s: socket path too long (max %zu)", path,
                 sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    /* Mode 0600 from the start: no window where others could connect. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (r < 0 || listen(fd, 16) < 0)
        goto fail;
    return fd;
fail:;
    int ret = -errno;
    snprintf(err, err_len, "%s: %s%s", path, strerror(-ret),
             ret == -EADDRINUSE ? " (another runvm, or a stale socket: "
                                  "remove it or pick another path)"
                                : "");
    if (fd >= 0)
        close(fd);
    return ret;
}

/* ---- GET /status, PUT /shutdown ----------------------------------------- */

/* Serves the agent of vm on its channel ch; resumed: a VM restored from a
 * snapshot, whose agent is re-announced with fresh entropy and time. */
static int serve_agent(struct api_server *s, struct vm *vm,
                       struct agent_channel *ch, bool resumed)
{
    s->vm = vm;
    s->ch = ch;
    s->t_hello_ns = 0;
    int ret = session_init(&s->session, s->loop, ch->host_fd, &s->cfg.expect,
                           &api_run_sink, s);
    if (ret == 0 && resumed)
        ret = session_resume(&s->session);
    if (ret < 0)
        return ret;
    session_set_watchdog(&s->session, s->cfg.run_slack_ms);
    return 0;
}

static void get_status(struct api_server *s, struct api_conn *c,
                       const struct http_request *req)
{
    const struct vm *vm = s->vm;
    enum session_state st = s->session.state;
    (void)req;
    const char *state = s->stopping             ? "stopping"
                        : s->renewing           ? "renewing"
                        : st == SESSION_BOOTING ? "booting"
                        : st == SESSION_RUNNING ? "running"
                                                : "ready";
    struct msg_buf b;
    msg_buf_init(&b);
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "{\"state\":\"%s\",\"lang\":", state);
    msg_buf_append(&b, tmp, strlen(tmp));
    const struct agent_hello *h = session_hello(&s->session);
    const struct agent_client *ac = &s->session.client;
    event_json_string(&b, h->lang, strlen(h->lang));
    msg_buf_append(&b, ",\"toolchain\":", 13);
    event_json_string(&b, h->toolchain, strlen(h->toolchain));
    msg_buf_append(&b, ",\"agent_version\":", 17);
    event_json_string(&b, h->agent_version, strlen(h->agent_version));
    const char *version = s->cfg.expect.version ? s->cfg.expect.version : "";
    msg_buf_append(&b, ",\"version\":", 11);
    event_json_string(&b, version, strlen(version));
    if (s->cfg.catalog) {
        msg_buf_append(&b, ",\"langs\":", 9);
        catalog_json(s->cfg.catalog, &b);
    }
    double ms = 1e6;
    snprintf(tmp, sizeof(tmp),
             ",\"boot\":{\"kvm_ready_ms\":%.3f,\"first_kvm_run_ms\":%.3f,"
             "\"agent_ready_ms\":%.3f},\"uptime_ms\":%.3f,\"runs\":%" PRIu64
             ",\"requests\":%" PRIu64 ",\"rejected\":%" PRIu64
             ",\"idle_closed\":%" PRIu64 ",\"stalled_readers\":%" PRIu64
             ",\"fresh_vms\":%s,\"vms\":%" PRIu64
             ",\"channel\":{\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
             ",\"dropped_frames\":%" PRIu64 "}}",
             (double)(vm->t_kvm_ready - vm->t_start) / ms,
             vm->t_first_run ? (double)(vm->t_first_run - vm->t_start) / ms
                             : 0.0,
             s->t_hello_ns ? (double)(s->t_hello_ns - vm->t_start) / ms : 0.0,
             (double)(clock_now_ns() - vm->t_start) / ms, s->runs, s->requests,
             s->rejected, s->idle_closed, s->stalled_readers,
             s->cfg.fresh_vms ? "true" : "false", s->renewals + 1, ac->bytes_in,
             ac->bytes_out, ac->dropped + msg_reader_dropped(&ac->reader));
    msg_buf_append(&b, tmp, strlen(tmp) + 1);
    api_reply(c, 200, (const char *)b.data);
    msg_buf_free(&b);
}

static void put_shutdown(struct api_server *s, struct api_conn *c,
                         const struct http_request *req)
{
    (void)req;
    s->shutdown_requested = true;
    s->stopping = true;
    api_reply(c, 200, "{\"state\":\"stopping\"}");
    /* The agent powers the VM off; a stop after the grace period
     * otherwise (api_run's power_off_overdue). */
    session_power_off(&s->session, API_SHUTDOWN_GRACE_MS);
}

/* ---- routing ------------------------------------------------------------ */

/* Each endpoint once: a handler answers c now, or keeps it (POST /start
 * while the VM boots). req lives as long as c. */
struct api_route {
    const char *method;
    const char *path;
    void (*handle)(struct api_server *s, struct api_conn *c,
                   const struct http_request *req);
};

static const struct api_route routes[] = {
    {"POST", "/start", api_run_post_start},
    {"GET", "/status", get_status},
    {"PUT", "/shutdown", put_shutdown},
};

#define NR_ROUTES (sizeof(routes) / sizeof(routes[0]))

static void route(struct api_server *s, struct api_conn *c,
                  const struct http_request *req)
{
    s->requests++;
    for (size_t i = 0; i < NR_ROUTES; i++) {
        const struct api_route *r = &routes[i];
        if (strcmp(req->path, r->path) != 0)
            continue;
        if (strcmp(req->method, r->method) != 0) {
            api_reply_error(c, 405, "use %s %s", r->method, r->path);
            return;
        }
        r->handle(s, c, req);
        return;
    }
    char list[128] = "";
    size_t n = 0;
    for (size_t i = 0; i < NR_ROUTES && n < sizeof(list); i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s %s",
                              i ? ", " : "", routes[i].method, routes[i].path);
    api_reply_error(c, 404, "no such endpoint: %s", list);
}

/* The message of a request http_parse refused with status. */
static const char *parse_error(int status)
{
    switch (status) {
    case 413: return "body too large (4 MiB at most)";
    case 431: return "headers too large (8 KiB at most)";
    case 411: return "send a Content-Length (chunked bodies are not accepted)";
    case 405: return "unsupported method";
    case 414: return "path too long";
    case 505: return "HTTP/1.0 or 1.1 only";
    default: return "malformed HTTP request";
    }
}

static void conn_ready(void *opaque, uint32_t events)
{
    struct api_conn *c = opaque;
    struct api_server *s = c->s;
    if (c->replying) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(c);
        return;
    }
    char buf[65536];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    if (c->drain) {
        c->drained += (size_t)n;
        if (c->drained > 4 * HTTP_MAX_BODY)
            conn_close(c);
        return;
    }
    /* Bytes past a whole request (one per connection) are ignored: its
     * body stays where the handler was given it. */
    if (c->have_request)
        return;
    msg_buf_append(&c->in, buf, (size_t)n);
    int r =
        http_parse((const char *)c->in.data, c->in.len, HTTP_MAX_BODY, &c->req);
    if (r == 0)
        return;
    if (r < 0) {
        s->requests++;
        c->drain = true;
        api_reply_error(c, -r, "%s", parse_error(-r));
        return;
    }
    c->have_request = true;
    c->deadline_ns = 0; /* a handler's now, however long it holds it */
    route(s, c, &c->req);
}

/* Closes connections past their deadline: one that has not sent a whole
 * request in idle_ms is answered 408 (and has idle_ms more to read it),
 * one that does not read its answer is dropped. A client that connects
 * and waits holds a slot that long, not forever. */
static void sweep_idle(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    uint64_t expirations, now = clock_now_ns();
    (void)events;
    if (read(s->tick_fd, &expirations, sizeof(expirations)) < 0 &&
        errno != EAGAIN)
        return;
    for (int i = 0; i < API_MAX_CONNS; i++) {
        struct api_conn *c = &s->conns[i];
        if (c->fd < 0 || !c->deadline_ns || now < c->deadline_ns)
            continue;
        if (c->replying || c->drain) {
            conn_close(c);
        } else {
            s->idle_closed++;
            s->requests++;
            c->drain = true;
            api_reply_error(c, 408, "no whole request within %u ms",
                            s->cfg.idle_ms);
        }
    }
}

static void api_accept(void *opaque, uint32_t events)
{
    struct api_server *s = opaque;
    (void)events;
    for (;;) {
        int fd =
            accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct api_conn *c = NULL;
        for (int i = 0; i < API_MAX_CONNS && !c; i++)
            if (s->conns[i].fd < 0)
                c = &s->conns[i];
        if (!c) {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                "application/json\r\nContent-Length: 33\r\nConnection: "
                "close\r\n\r\n{\"error\":\"too many connections\"}\n";
            ssize_t w =
                send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            continue;
        }
        *c = (struct api_conn){
            .s = s,
            .fd = fd,
            .deadline_ns = clock_now_ns() + (uint64_t)s->cfg.idle_ms * 1000000,
        };
        msg_buf_init(&c->in);
        msg_buf_init(&c->out);
        if (evloop_add(s->loop, fd, EPOLLIN, conn_ready, c) < 0) {
            close(fd);
            c->fd = -1;
        }
    }
}

/* ---- set-up ------------------------------------------------------------- */

int api_server_attach(struct api_server **out, struct vm *vm,
                      struct agent_channel *ch,
                      const struct api_server_config *cfg, char *err,
                      size_t err_len)
{
    struct api_server *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s) {
        snprintf(err, err_len, "API: out of memory");
        return -ENOMEM;
    }
    s->vm = vm;
    s->loop = vm->loop;
    s->cfg = *cfg;
    if (!s->cfg.run_slack_ms)
        s->cfg.run_slack_ms = API_RUN_SLACK_MS;
    if (!s->cfg.idle_ms)
        s->cfg.idle_ms = API_IDLE_MS;
    if (!s->cfg.max_buffered)
        s->cfg.max_buffered = API_MAX_BUFFERED;
    s->listen_fd = -1;
    s->tick_fd = -1;
    for (int i = 0; i < API_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    api_run_init(&s->run);
    *out = s; /* api_server_free cleans up from here on */

    /* Output sockets live in a private directory of runvm's own. */
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (!base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode))
        base = "/tmp";
    snprintf(s->rundir, sizeof(s->rundir), "%.200s/runvm.XXXXXX", base);
    if (!mkdtemp(s->rundir)) {
        int ret = -errno;
        snprintf(err, err_len, "API: runtime directory %s: %s", s->rundir,
                 strerror(-ret));
        s->rundir[0] = '\0';
        return ret;
    }
    int ret = serve_agent(s, vm, ch, cfg->resumed);
    if (ret < 0) {
        snprintf(err, err_len, "API: agent channel: %s", strerror(-ret));
        return ret;
    }
    /* jansson seeds its hash tables from /dev/urandom on first use: now,
     * while runvm may still open files (it opens none once sandboxed). */
    json_object_seed(0);
    /* Idle connections are looked for four times per idle_ms. */
    uint64_t tick_ns = (uint64_t)s->cfg.idle_ms * 1000000 / 4;
    struct itimerspec its = {
        .it_interval = {(time_t)(tick_ns / 1000000000),
                        (long)(tick_ns % 1000000000)},
    };
    its.it_value = its.it_interval;
    s->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (s->tick_fd < 0 || timerfd_settime(s->tick_fd, 0, &its, NULL) < 0 ||
        (ret = evloop_add(s->loop, s->tick_fd, EPOLLIN, sweep_idle, s)) < 0) {
        ret = ret < 0 ? ret : -errno;
        snprintf(err, err_len, "API: idle timer: %s", strerror(-ret));
        return ret;
    }
    char why[200];
    s->listen_fd = api_listen_unix(cfg->sock_path, why, sizeof(why));
    if (s->listen_fd < 0) {
        snprintf(err, err_len, "--api-sock %s", why);
        return s->listen_fd;
    }
    s->own_sock = true;
    ret = evloop_add(s->loop, s->listen_fd, EPOLLIN, api_accept, s);
    if (ret < 0) {
        snprintf(err, err_len, "API: event loop: %s", strerror(-ret));
        return ret;
    }
    return 0;
}

bool api_server_paused(const struct api_server *s)
{
    return s->paused && !s->stopping;
}

void api_server_go_on(struct api_server *s)
{
    s->paused = false;
    /* The memory file holds this VM's RNG state: from here it has its
     * own (an agent that cannot take it answers with an ERROR, which
     * no run waits for). */
    if (session_refresh(&s->session) < 0)
        fprintf(stderr, "runvm: could not reseed the guest the snapshot "
                        "was taken of\n");
    api_run_ready(s);
}

void api_server_no_fresh_vms(struct api_server *s)
{
    s->cfg.fresh_vms = false;
}

bool api_server_wants_renewal(const struct api_server *s)
{
    return s->renewing && !s->stopping;
}

void api_server_detach(struct api_server *s)
{
    session_free(&s->session);
    s->vm = NULL;
    s->ch = NULL;
}

int api_server_renewed(struct api_server *s, struct vm *vm,
                       struct agent_channel *ch, bool resumed, char *err,
                       size_t err_len)
{
    int ret = serve_agent(s, vm, ch, resumed);
    if (ret < 0) {
        snprintf(err, err_len, "API: agent channel: %s", strerror(-ret));
        api_server_renewal_failed(s, err);
        return ret;
    }
    s->renewing = false;
    s->renewals++;
    return 0;
}

void api_server_renewal_failed(struct api_server *s, const char *why)
{
    s->renewing = false;
    s->stopping = true;
    if (s->pending_start) {
        struct api_conn *c = s->pending_start;
        s->pending_start = NULL;
        api_reply_error(c, 500, "no fresh VM for this submission: %s", why);
    }
}

int api_server_chown(struct api_server *s, uid_t uid, gid_t gid, char *err,
                     size_t err_len)
{
    /* Never through a symlink: the socket's directory may be USER's. */
    const char *paths[] = {s->cfg.sock_path, s->rundir};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        int ret = lstat(paths[i], &st) < 0 ? -errno : 0;
        if (!ret && !(i == 0 ? S_ISSOCK(st.st_mode) : S_ISDIR(st.st_mode)))
            ret = -EINVAL;
        if (!ret &&
            fchownat(AT_FDCWD, paths[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            ret = -errno;
        if (ret < 0) {
            snprintf(err, err_len, "--user: chown %s: %s", paths[i],
                     ret == -EINVAL ? "not what runvm made there"
                                    : strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int api_server_status(struct api_server *s, enum vm_stop stop, int signo)
{
    int status = event_stop_status(stop, signo, s->shutdown_requested);
    const char *why = s->vm && s->vm->stop_why ? s->vm->stop_why : "VM stopped";
    if (status == RUNVM_EXIT_INFRA)
        fprintf(stderr, "runvm: API mode ended without PUT /shutdown: %s\n",
                why);
    api_run_vm_stopped(s, why);
    return status;
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < API_MAX_CONNS; i++)
        conn_close(&s->conns[i]);
    api_run_free(s);
    if (s->tick_fd >= 0) {
        evloop_del(s->loop, s->tick_fd);
        close(s->tick_fd);
    }
    if (s->listen_fd >= 0) {
        evloop_del(s->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->own_sock)
        unlink(s->cfg.sock_path);
    if (s->rundir[0])
        rmdir(s->rundir);
    session_free(&s->session);
    free(s);
}
