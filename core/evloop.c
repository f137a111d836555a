#include "core/evloop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int evloop_init(struct evloop *loop)
{
    memset(loop, 0, sizeof(*loop));
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        loop->handlers[i].fd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        return -errno;
    loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->stop_fd < 0) {
        int ret = -errno;
        close(loop->epfd);
        return ret;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->stop_fd, &ev) < 0) {
        int ret = -errno;
        evloop_free(loop);
        return ret;
    }
    return 0;
}

void evloop_free(struct evloop *loop)
{
    if (loop->epfd > 0)
        close(loop->epfd);
    if (loop->stop_fd > 0)
        close(loop->stop_fd);
    loop->epfd = loop->stop_fd = -1;
}

/* What epoll hands back for slot h: its index + 1 (0 is the stop fd) and
 * its generation. */
static uint64_t tag(const struct evloop *loop, const struct evloop_handler *h)
{
    return (uint64_t)h->gen << 32 | (uint64_t)(h - loop->handlers + 1);
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_cb cb,
               void *opaque)
{
    struct evloop_handler *h = NULL;
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++) {
        if (loop->handlers[i].fd == -1) {
            h = &loop->handlers[i];
            break;
        }
    }
    if (!h)
        return -ENOSPC;
    uint32_t gen = h->gen + 1;
    struct evloop_handler next = {fd, cb, opaque, gen};
    struct epoll_event ev = {.events = events,
                             .data.u64 = (uint64_t)gen << 32 |
                                         (uint64_t)(h - loop->handlers + 1)};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    *h = next;
    return 0;
}

static struct evloop_handler *evloop_find(struct evloop *loop, int fd)
{
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        if (loop->handlers[i].fd == fd)
            return &loop->handlers[i];
    return NULL;
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events)
{
    struct evloop_handler *h = evloop_find(loop, fd);
    if (!h)
        return -ENOENT;
    struct epoll_event ev = {.events = events, .data.u64 = tag(loop, h)};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void evloop_del(struct evloop *loop, int fd)
{
    struct evloop_handler *h = evloop_find(loop, fd);
    if (!h)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    h->fd = -1;
}

/* Runs the callbacks of n events. stoppable (evloop_run): -1 when the
 * stop fd's is among them or a callback stopped the loop (those after are
 * not run); else the stop fd and the flag are left alone. */
static int dispatch(struct evloop *loop, const struct epoll_event *evs, int n,
                    bool stoppable)
{
    for (int i = 0; i < n && !(stoppable && loop->stopping); i++) {
        uint64_t t = evs[i].data.u64;
        uint32_t idx = (uint32_t)t, gen = (uint32_t)(t >> 32);
        if (idx == 0 || idx > EVLOOP_MAX_HANDLERS) {
            if (stoppable)
                return -1;
            continue;
        }
        /* A callback may have removed this handler earlier in the batch
         * (fd -1), or removed it and given its slot to another fd (a newer
         * generation): the event is not the new one's. */
        struct evloop_handler *h = &loop->handlers[idx - 1];
        if (h->fd >= 0 && h->gen == gen)
            h->cb(h->opaque, evs[i].events);
    }
    return 0;
}

void evloop_pump(struct evloop *loop)
{
    struct epoll_event evs[16];
    int n = epoll_wait(loop->epfd, evs, 16, 0);
    if (n > 0)
        (void)dispatch(loop, evs, n, false);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evloop_run(struct evloop *loop, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    struct epoll_event evs[16];
    while (!__atomic_load_n(&loop->stopping, __ATOMIC_SEQ_CST)) {
        int wait_ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int n = epoll_wait(loop->epfd, evs, 16, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (dispatch(loop, evs, n, true) < 0)
            loop->stopping = 1;
    }
    /* The stop is this run's: the loop can run again. A stop requested
     * from here on stays set for the next run (flag first, then the fd). */
    __atomic_store_n(&loop->stopping, 0, __ATOMIC_SEQ_CST);
    uint64_t v;
    ssize_t r = read(loop->stop_fd, &v, sizeof(v));
    (void)r;
    return 0;
}

void evloop_stop(struct evloop *loop)
{
    uint64_t one = 1;
    /* Set the flag first so a callback already running sees it. */
    __atomic_store_n(&loop->stopping, 1, __ATOMIC_SEQ_CST);
    ssize_t r = write(loop->stop_fd, &one, sizeof(one));
    (void)r;
}
