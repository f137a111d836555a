/* runvm's HTTP server (api/httpd.c) against libmicrohttpd, the library
 * #23 suggested, serving the same answer the same way: one thread, on
 * runvm's event loop (libmicrohttpd in its external-epoll mode, its
 * epoll fd in the loop), a listening Unix socket, a connection per request
 * as runvm's clients make them, the same connection cap and idle timeout.
 * tests/bench/httpd.sh drives it and records the figures.
 *
 *   httpd-peer own|mhd SOCK        serve GET /status on SOCK until SIGTERM
 *   httpd-peer client SOCK N CONC  N requests, CONC connections at a time;
 *                                  prints requests/s, p50, p99 (seconds)
 *   httpd-peer hold SOCK K         K connections that each send half a
 *                                  request, held until SIGTERM */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/httpd.h"
#include "core/evloop.h"

#define BODY      "{\"draining\":false,\"queue\":{\"length\":0,\"max\":32}}\n"
#define MAX_CONNS 512
#define IDLE_S    10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(void *opaque, uint32_t events)
{
    (void)events;
    evloop_stop(opaque);
}

/* ---- runvm's server ---- */

static void own_route(void *opaque, struct httpd_conn *c,
                      const struct http_request *req)
{
    (void)opaque;
    (void)req;
    httpd_reply(c, 200, BODY);
}

/* ---- libmicrohttpd ---- */

static enum MHD_Result mhd_route(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *data,
                                 size_t *data_len, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)data;
    (void)data_len, (void)con_cls;
    static char body[] = BODY; /* the library's prototype is not const */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* libmicrohttpd driven as its external-epoll mode asks: MHD_run when its
 * epoll fd is ready or when MHD_get_timeout's time has come (at once
 * while it says 0: connections it has ready still), a timerfd for the
 * rest. */
struct mhd {
    struct MHD_Daemon *d;
    int timer_fd;
};

static void mhd_step(struct mhd *m)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    bool has_timeout = false;
    for (int i = 0; i < 64; i++) {
        MHD_run(m->d);
        has_timeout = MHD_get_timeout(m->d, &ms) == MHD_YES;
        if (!has_timeout || ms > 0)
            break;
    }
    struct itimerspec its = {0};
    if (has_timeout) {
        its.it_value.tv_sec = (time_t)(ms / 1000);
        its.it_value.tv_nsec = (long)(ms % 1000) * 1000000 + (ms ? 0 : 1);
    }
    (void)timerfd_settime(m->timer_fd, 0, &its, NULL);
}

static void mhd_ready(void *opaque, uint32_t events)
{
    (void)events;
    mhd_step(opaque);
}

static void mhd_timer(void *opaque, uint32_t events)
{
    struct mhd *m = opaque;
    uint64_t n;
    (void)events;
    (void)!read(m->timer_fd, &n, sizeof(n));
    mhd_step(m);
}

static int serve(const char *kind, const char *path)
{
    struct evloop loop;
    char err[256];
    if (evloop_init(&loop) < 0)
        return 1;
    unlink(path);
    int lfd = httpd_listen_unix(path, err, sizeof(err));
    if (lfd < 0) {
        fprintf(stderr, "httpd-peer: %s\n", err);
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (evloop_add(&loop, sfd, EPOLLIN, on_signal, &loop) < 0)
        return 1;
    struct httpd h = {0};
    struct mhd m = {.timer_fd = -1};
    if (!strcmp(kind, "own")) {
        struct httpd_config cfg = {.max_conns = MAX_CONNS,
                                   .idle_ms = IDLE_S * 1000,
                                   .route = own_route};
        if (httpd_init(&h, &loop, lfd, &cfg, err, sizeof(err)) < 0) {
            fprintf(stderr, "httpd-peer: %s\n", err);
            return 1;
        }
    } else {
        m.d = MHD_start_daemon(
            MHD_USE_EPOLL, 0, NULL, NULL, mhd_route, NULL,
            MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int)IDLE_S, MHD_OPTION_END);
        const union MHD_DaemonInfo *i =
            m.d ? MHD_get_daemon_info(m.d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
        m.timer_fd =
            timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (!i || m.timer_fd < 0 ||
            evloop_add(&loop, i->epoll_fd, EPOLLIN, mhd_ready, &m) < 0 ||
            evloop_add(&loop, m.timer_fd, EPOLLIN, mhd_timer, &m) < 0) {
            fprintf(stderr, "httpd-peer: libmicrohttpd did not start\n");
            return 1;
        }
    }
    int ret = evloop_run(&loop, -1);
    if (m.d)
        MHD_stop_daemon(m.d);
    httpd_free(&h);
    unlink(path);
    return ret < 0 ? 1 : 0;
}

/* ---- the client ---- */

/* A connection to path; blocking in connect (a full backlog waits),
 * non-blocking afterwards. */
static int dial(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("httpd-peer: connect");
        exit(1);
    }
    (void)fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char req[] = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";

/* CONC connections in flight, each one request to its answer's end. */
static int client(const char *path, int n, int conc)
{
    struct pollfd *p = calloc((size_t)conc, sizeof(*p));
    bool *answered = calloc((size_t)conc, sizeof(*answered));
    double *t0 = calloc((size_t)conc, sizeof(*t0));
    double *lat = calloc((size_t)n, sizeof(*lat));
    int started = 0, done = 0, bad = 0;
    double start = now_s();
    for (int i = 0; i < conc; i++)
        p[i].fd = -1;
    while (done < n) {
        for (int i = 0; i < conc && started < n; i++)
            if (p[i].fd < 0) {
                p[i].fd = dial(path);
                p[i].events = POLLIN;
                t0[i] = now_s();
                answered[i] = false;
                if (write(p[i].fd, req, sizeof(req) - 1) !=
                    (ssize_t)sizeof(req) - 1)
                    bad++;
                started++;
            }
        if (poll(p, (nfds_t)conc, 20000) <= 0) {
            fprintf(stderr, "httpd-peer: no answer in 20 s\n");
            return 1;
        }
        for (int i = 0; i < conc; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[4096];
            ssize_t r = read(p[i].fd, buf, sizeof(buf));
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r > 0) {
                /* The status line is in the answer's first bytes. */
                if (!answered[i] && strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
                    bad++;
                answered[i] = true;
                continue; /* to the end of the answer */
            }
            lat[done++] = now_s() - t0[i];
            close(p[i].fd);
            p[i].fd = -1;
        }
    }
    double wall = now_s() - start;
    qsort(lat, (size_t)n, sizeof(*lat), cmp);
    printf("requests %d conc %d throughput %.0f p50 %.6f p99 %.6f bad %d\n", n,
           conc, n / wall, lat[n / 2], lat[(int)(n * 0.99)], bad);
    return bad ? 1 : 0;
}

/* K connections, each half a request in, held open. */
static int hold(const char *path, int k)
{
    for (int i = 0; i < k; i++) {
        int fd = dial(path);
        if (write(fd, "GET /status HTTP/1.1\r\n", 22) != 22)
            return 1;
    }
    printf("holding %d\n", k);
    fflush(stdout);
    pause();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && (!strcmp(argv[1], "own") || !strcmp(argv[1], "mhd")))
        return serve(argv[1], argv[2]);
    if (argc == 5 && !strcmp(argv[1], "client"))
        return client(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "hold"))
        return hold(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: httpd-peer own|mhd SOCK | client SOCK N CONC | "
                    "hold SOCK K\n");
    return 2;
}
