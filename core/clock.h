/* The one clock runvm times things with: CLOCK_MONOTONIC in nanoseconds
 * (the boot timeline, round trips, request timings). */
#ifndef RUNVM_CLOCK_H
#define RUNVM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Now, in ns of CLOCK_MONOTONIC. */
static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
