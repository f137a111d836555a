/* One pass of an event loop for fuzz targets: dispatches what its fds are
 * ready for now, as evloop_run would, but without blocking, timers or the
 * stop fd, so that a run is quick and goes the same way each time. */
#ifndef RUNVM_FUZZ_PUMP_H
#define RUNVM_FUZZ_PUMP_H

#include <sys/epoll.h>

#include "core/evloop.h"

static inline void pump_ready(struct evloop *loop)
{
    evloop_pump(loop);
}

#endif
