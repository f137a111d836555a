/* The VMM's main-thread event loop: epoll over fds with callbacks, and a
 * stop eventfd any thread may signal. Device back-ends run here, never in
 * vCPU threads. */
#ifndef RUNVM_EVLOOP_H
#define RUNVM_EVLOOP_H

#include <stdint.h>

#define EVLOOP_MAX_HANDLERS                                                    \
    1024 /* runvm serve: its connections, VMs and output sockets */

/* Called on the loop thread with the epoll events that fired. */
typedef void (*evloop_cb)(void *opaque, uint32_t events);

struct evloop_handler {
    int fd;
    evloop_cb cb;
    void *opaque;
    /* Bumped by each evloop_add of this slot: an event epoll reported for
     * the slot's last fd is not delivered to the next one. */
    uint32_t gen;
};

struct evloop {
    int epfd;
    int stop_fd; /* eventfd; evloop_stop writes it */
    int stopping;
    struct evloop_handler handlers[EVLOOP_MAX_HANDLERS];
};

/* 0 or -errno. */
int evloop_init(struct evloop *loop) __attribute__((warn_unused_result));
void evloop_free(struct evloop *loop);

/* Watches fd for events (EPOLLIN, EPOLLOUT, ...). 0 or -errno. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_cb cb,
               void *opaque) __attribute__((warn_unused_result));
/* Changes the events watched on fd. 0 or -errno. */
int evloop_mod(struct evloop *loop, int fd, uint32_t events);
/* Stops watching fd. */
void evloop_del(struct evloop *loop, int fd);

/* Runs until evloop_stop, or until timeout_ms passes (-1: no limit).
 * Returns 0 when stopped (the stop is then used up: the loop can run
 * again), -ETIMEDOUT on timeout, -errno on failure. A stop requested while
 * the loop is not running ends its next run at once. */
int evloop_run(struct evloop *loop, int timeout_ms);

/* One pass: runs the callbacks of what is ready now, without waiting
 * (fuzz targets drive a loop so, the same way each run). A stop is left
 * for evloop_run. */
void evloop_pump(struct evloop *loop);

/* Async-signal-safe and thread-safe: makes evloop_run return. */
void evloop_stop(struct evloop *loop);

#endif
