/* One pass of an event loop for fuzz targets: dispatches what its fds are
 * ready for now, as evloop_run would, but without blocking, timers or the
 * stop fd, so that a run is quick and goes the same way each time. */
#ifndef RUNVM_FUZZ_PUMP_H
#define RUNVM_FUZZ_PUMP_H

#include <sys/epoll.h>

#include "core/evloop.h"

static inline void pump_ready(struct evloop *loop)
{
    struct epoll_event evs[16];
    int n = epoll_wait(loop->epfd, evs, 16, 0);
    for (int i = 0; i < n; i++) {
        struct evloop_handler *h = evs[i].data.ptr;
        /* NULL is the stop fd; fd -1 a handler an earlier callback of
         * this batch removed. */
        if (h && h->fd >= 0)
            h->cb(h->opaque, evs[i].events);
    }
}

#endif
