#include "api/httpd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "session/event.h"

static void conn_close(struct httpd_conn *c)
{
    if (c->fd < 0)
        return;
    struct httpd *h = c->h;
    if (h->cfg.closed)
        h->cfg.closed(h->cfg.opaque, c);
    c->data = NULL;
    evloop_del(h->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    msg_buf_free(&c->in);
    msg_buf_free(&c->out);
}

static void conn_flush(struct httpd_conn *c)
{
    bool broken = false;
    while (c->out.len > 0) {
        ssize_t n =
            send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)evloop_mod(c->h->loop, c->fd, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            broken = true;
            break;
        }
        c->sent_ns = clock_now_ns();
        msg_buf_consume(&c->out, (size_t)n);
    }
    if (broken) {
        conn_close(c);
        return;
    }
    if (c->streaming && !c->ended) {
        (void)evloop_mod(c->h->loop, c->fd,
                         EPOLLRDHUP | (c->out.len ? EPOLLOUT : 0));
        if (c->out.len == 0 && c->h->cfg.drained)
            c->h->cfg.drained(c->h->cfg.opaque, c);
        return;
    }
    if (c->out.len > 0)
        return;
    if (c->drain) {
        /* A request refused before its body was read: closing now could
         * make the client's write fail before it reads the answer, so
         * discard what it still sends until it closes. */
        shutdown(c->fd, SHUT_WR);
        c->replying = false;
        (void)evloop_mod(c->h->loop, c->fd, EPOLLIN);
        return;
    }
    conn_close(c); /* one request per connection */
}

void httpd_hold(struct httpd_conn *c)
{
    c->deadline_ns = 0;
    /* Nothing more is read, but a client that hangs up is seen: EPOLLHUP
     * on a Unix socket, EPOLLRDHUP on TCP. */
    (void)evloop_mod(c->h->loop, c->fd, EPOLLRDHUP);
}

void httpd_reply_as(struct httpd_conn *c, int status, const char *type,
                    const char *extra, const char *body)
{
    char head[512];
    size_t len = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %.64s\r\n"
                     "Content-Length: %zu\r\n%.256sConnection: close\r\n\r\n",
                     status, http_reason(status), type, len + 1,
                     extra ? extra : "");
    if (status >= 400)
        c->h->rejected++;
    c->replying = true;
    /* The client has idle_ms to take its answer. */
    c->deadline_ns = clock_now_ns() + (uint64_t)c->h->cfg.idle_ms * 1000000;
    msg_buf_reset(&c->out);
    msg_buf_append(&c->out, head, (size_t)n);
    msg_buf_append(&c->out, body, len);
    msg_buf_append(&c->out, "\n", 1);
    conn_flush(c);
}

void httpd_reply_with(struct httpd_conn *c, int status, const char *extra,
                      const char *body)
{
    httpd_reply_as(c, status, "application/json", extra, body);
}

void httpd_stream_begin(struct httpd_conn *c, int status,
                        const char *content_type, const char *extra)
{
    char head[512];
    c->chunked = !c->req.http10;
    int n =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %.64s\r\n%.256s"
                 "%sConnection: close\r\n\r\n",
                 status, http_reason(status), content_type, extra ? extra : "",
                 c->chunked ? "Transfer-Encoding: chunked\r\n" : "");
    c->replying = true;
    c->streaming = true;
    c->deadline_ns = 0;
    msg_buf_reset(&c->out);
    msg_buf_append(&c->out, head, (size_t)n);
    (void)evloop_mod(c->h->loop, c->fd, EPOLLOUT);
}

size_t httpd_stream_write(struct httpd_conn *c, const void *p, size_t n)
{
    if (n == 0)
        return c->out.len;
    if (c->chunked) {
        char size[32];
        int l = snprintf(size, sizeof(size), "%zx\r\n", n);
        msg_buf_append(&c->out, size, (size_t)l);
    }
    msg_buf_append(&c->out, p, n);
    if (c->chunked)
        msg_buf_append(&c->out, "\r\n", 2);
    (void)evloop_mod(c->h->loop, c->fd, EPOLLOUT | EPOLLRDHUP);
    return c->out.len;
}

void httpd_stream_end(struct httpd_conn *c)
{
    if (c->fd < 0)
        return;
    c->ended = true;
    if (c->chunked)
        msg_buf_append(&c->out, "0\r\n\r\n", 5);
    /* The client has idle_ms to take the rest. */
    c->deadline_ns = clock_now_ns() + (uint64_t)c->h->cfg.idle_ms * 1000000;
    conn_flush(c);
}

void httpd_close(struct httpd_conn *c)
{
    conn_close(c);
}

void httpd_reply(struct httpd_conn *c, int status, const char *body)
{
    httpd_reply_with(c, status, NULL, body);
}

void httpd_reply_error(struct httpd_conn *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct msg_buf b;
    msg_buf_init(&b);
    msg_buf_append(&b, "{\"error\":", 9);
    event_json_string(&b, msg, strlen(msg));
    msg_buf_append(&b, "}", 2); /* with the NUL */
    httpd_reply(c, status, b.data ? (const char *)b.data : "{}");
    msg_buf_free(&b);
}

int httpd_match(struct httpd_conn *c, const struct http_request *req,
                const struct httpd_route *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        /* A path may have several methods, each its own route. */
        for (size_t j = i; j < n; j++)
            if (!strcmp(req->path, routes[j].path) &&
                !strcmp(req->method, routes[j].method))
                return (int)j;
        httpd_reply_error(c, 405, "use %s %s", routes[i].method,
                          routes[i].path);
        return -1;
    }
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(list); i++)
        len +=
            (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %s",
                             i ? ", " : "", routes[i].method, routes[i].path);
    httpd_reply_error(c, 404, "no such endpoint: %s", list);
    return -1;
}

int httpd_rundir(const char *prefix, char *out, size_t len, char *err,
                 size_t err_len)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (!base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode))
        base = "/tmp";
    snprintf(out, len, "%.200s/%.32s.XXXXXX", base, prefix);
    if (!mkdtemp(out)) {
        int ret = -errno;
        snprintf(err, err_len, "runtime directory %s: %s", out, strerror(-ret));
        out[0] = '\0';
        return ret;
    }
    return 0;
}

int httpd_listen_unix(const char *path, char *err, size_t err_len)
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
    if (r < 0 || listen(fd, 128) < 0)
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

int httpd_listen_tcp(const char *spec, char *err, size_t err_len)
{
    char host[64] = "127.0.0.1";
    const char *port = spec;
    const char *colon = strrchr(spec, ':');
    if (colon) {
        const char *h = spec;
        size_t n = (size_t)(colon - spec);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            h++;
            n -= 2;
        }
        if (n == 0 || n >= sizeof(host)) {
            snprintf(err, err_len, "%s: want PORT, ADDR:PORT or [ADDR]:PORT",
                     spec);
            return -EINVAL;
        }
        memcpy(host, h, n);
        host[n] = '\0';
        port = colon + 1;
    }
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (*port < '0' || *port > '9' || *end || p == 0 || p > 65535) {
        snprintf(err, err_len, "%s: the port must be 1 to 65535", spec);
        return -EINVAL;
    }
    struct sockaddr_storage a = {0};
    socklen_t alen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        alen = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        alen = sizeof(*a6);
    } else {
        snprintf(err, err_len, "%s: %s is not an IPv4 or IPv6 address", spec,
                 host);
        return -EINVAL;
    }
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, alen) < 0 || listen(fd, 512) < 0) {
        int ret = -errno;
        snprintf(err, err_len, "%s: %s", spec, strerror(-ret));
        if (fd >= 0)
            close(fd);
        return ret;
    }
    return fd;
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
    struct httpd_conn *c = opaque;
    struct httpd *h = c->h;
    if (c->replying) {
        if (c->streaming && (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
            conn_close(c); /* the client went away mid-answer */
        else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(c);
        return;
    }
    if (c->have_request && (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
        conn_close(c); /* held for an answer, and the client left */
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
    int r = http_parse((const char *)c->in.data, c->in.len, h->cfg.max_body,
                       &c->req);
    if (r == 0)
        return;
    h->requests++;
    if (r < 0) {
        c->drain = true;
        httpd_reply_error(c, -r, "%s", parse_error(-r));
        return;
    }
    c->have_request = true;
    c->deadline_ns = 0; /* a handler's now, however long it holds it */
    h->cfg.route(h->cfg.opaque, c, &c->req);
}

/* Closes connections past their deadline: one that has not sent a whole
 * request in idle_ms is answered 408 (and has idle_ms more to read it),
 * one that does not read its answer is dropped. A client that connects
 * and waits holds a slot that long, not forever. */
static void sweep_idle(void *opaque, uint32_t events)
{
    struct httpd *h = opaque;
    uint64_t expirations, now = clock_now_ns();
    (void)events;
    if (read(h->tick_fd, &expirations, sizeof(expirations)) < 0 &&
        errno != EAGAIN)
        return;
    for (unsigned int i = 0; i < h->cfg.max_conns; i++) {
        struct httpd_conn *c = &h->conns[i];
        if (c->fd < 0 || !c->deadline_ns || now < c->deadline_ns)
            continue;
        if (c->replying || c->drain) {
            conn_close(c);
        } else {
            h->idle_closed++;
            h->requests++;
            c->drain = true;
            httpd_reply_error(c, 408, "no whole request within %u ms",
                              h->cfg.idle_ms);
        }
    }
}

/* Who a connection counts against: a Unix socket's peer uid; 0 where
 * there is none to learn. */
static uint64_t peer_of(int fd, bool tcp)
{
    if (tcp) {
        struct sockaddr_storage a;
        socklen_t len = sizeof(a);
        if (getpeername(fd, (struct sockaddr *)&a, &len) < 0)
            return 0;
        const uint8_t *p =
            a.ss_family == AF_INET6
                ? ((struct sockaddr_in6 *)&a)->sin6_addr.s6_addr
                : (const uint8_t *)&((struct sockaddr_in *)&a)->sin_addr;
        size_t n = a.ss_family == AF_INET6 ? 16 : 4;
        uint64_t h = 1469598103934665603ull; /* FNV-1a, tagged apart */
        for (size_t i = 0; i < n; i++)
            h = (h ^ p[i]) * 1099511628211ull;
        return h | (1ull << 63);
    }
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        return cred.uid;
    return 0;
}

static void refuse(struct httpd *h, int fd, const char *why)
{
    char msg[256];
    int blen = (int)strlen(why) + 13;
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                     "application/json\r\nContent-Length: %d\r\nRetry-After: "
                     "1\r\nConnection: close\r\n\r\n{\"error\":\"%s\"}\n",
                     blen, why);
    ssize_t w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
    h->refused_conns++;
}

static void accept_ready(struct httpd *h, int which)
{
    int listen_fd = h->listen_fd[which];
    bool tcp = h->listen_tcp[which];
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        uint64_t client = peer_of(fd, tcp);
        unsigned int same = 0;
        struct httpd_conn *c = NULL;
        for (unsigned int i = 0; i < h->cfg.max_conns; i++) {
            if (h->conns[i].fd < 0)
                c = c ? c : &h->conns[i];
            else if (h->conns[i].client == client)
                same++;
        }
        if (!c) {
            refuse(h, fd, "too many connections");
            continue;
        }
        if (same >= h->cfg.max_per_client) {
            refuse(h, fd, "too many connections from this client");
            continue;
        }
        *c = (struct httpd_conn){
            .h = h,
            .fd = fd,
            .client = client,
            .tcp = tcp,
            .deadline_ns = clock_now_ns() + (uint64_t)h->cfg.idle_ms * 1000000,
        };
        msg_buf_init(&c->in);
        msg_buf_init(&c->out);
        if (evloop_add(h->loop, fd, EPOLLIN, conn_ready, c) < 0) {
            close(fd);
            c->fd = -1;
        }
    }
}

static void accept0(void *opaque, uint32_t events)
{
    struct httpd *h = opaque;
    (void)events;
    accept_ready(h, 0);
}

static void accept1(void *opaque, uint32_t events)
{
    struct httpd *h = opaque;
    (void)events;
    accept_ready(h, 1);
}

int httpd_add_listener(struct httpd *h, int listen_fd)
{
    int i = h->listen_fd[0] < 0 ? 0 : h->listen_fd[1] < 0 ? 1 : -1;
    if (i < 0)
        return -ENOSPC;
    int ret = evloop_add(h->loop, listen_fd, EPOLLIN, i ? accept1 : accept0, h);
    if (ret < 0)
        return ret;
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    h->listen_fd[i] = listen_fd;
    h->listen_tcp[i] =
        getsockname(listen_fd, (struct sockaddr *)&a, &len) == 0 &&
        (a.ss_family == AF_INET || a.ss_family == AF_INET6);
    return 0;
}

int httpd_init(struct httpd *h, struct evloop *loop, int listen_fd,
               const struct httpd_config *cfg, char *err, size_t err_len)
{
    *h = (struct httpd){
        .loop = loop,
        .cfg = *cfg,
        .listen_fd = {-1, -1},
        .tick_fd = -1,
    };
    if (!h->cfg.max_per_client || h->cfg.max_per_client > h->cfg.max_conns)
        h->cfg.max_per_client = h->cfg.max_conns;
    if (!h->cfg.max_body)
        h->cfg.max_body = HTTP_MAX_BODY;
    h->conns = calloc(h->cfg.max_conns, sizeof(*h->conns));
    if (!h->conns) {
        close(listen_fd);
        snprintf(err, err_len, "HTTP: out of memory");
        return -ENOMEM;
    }
    for (unsigned int i = 0; i < h->cfg.max_conns; i++)
        h->conns[i].fd = -1;
    /* Idle connections are looked for four times per idle_ms. */
    uint64_t tick_ns = (uint64_t)h->cfg.idle_ms * 1000000 / 4;
    struct itimerspec its = {
        .it_interval = {(time_t)(tick_ns / 1000000000),
                        (long)(tick_ns % 1000000000)},
    };
    its.it_value = its.it_interval;
    int ret = 0;
    h->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (h->tick_fd < 0 || timerfd_settime(h->tick_fd, 0, &its, NULL) < 0 ||
        (ret = evloop_add(loop, h->tick_fd, EPOLLIN, sweep_idle, h)) < 0) {
        ret = ret < 0 ? ret : -errno;
        close(listen_fd);
        snprintf(err, err_len, "HTTP: idle timer: %s", strerror(-ret));
        return ret;
    }
    ret = httpd_add_listener(h, listen_fd);
    if (ret < 0) {
        close(listen_fd);
        snprintf(err, err_len, "HTTP: event loop: %s", strerror(-ret));
    }
    return ret;
}

void httpd_free(struct httpd *h)
{
    for (unsigned int i = 0; h->conns && i < h->cfg.max_conns; i++)
        conn_close(&h->conns[i]);
    free(h->conns);
    h->conns = NULL;
    if (h->tick_fd > 0) {
        evloop_del(h->loop, h->tick_fd);
        close(h->tick_fd);
        h->tick_fd = -1;
    }
    for (int i = 0; i < 2; i++)
        if (h->listen_fd[i] > 0) {
            evloop_del(h->loop, h->listen_fd[i]);
            close(h->listen_fd[i]);
            h->listen_fd[i] = -1;
        }
}
