/* Boot timer: a guest write to its port (arch_platform's boot_timer; 0x440
 * on x86) records the time, so
 * a benchmark can split a boot into VMM set-up, kernel and init phases, and
 * with it any counters the VMM hands in (KVM's exit counts), so it can
 * count each phase's exits. */
#ifndef RUNVM_BOOT_TIMER_H
#define RUNVM_BOOT_TIMER_H

#include <stdint.h>

#include "core/bus.h"

#define BOOT_TIMER_MAX_MARKS    8
#define BOOT_TIMER_MAX_COUNTERS 5

struct boot_timer_mark {
    uint64_t ns;       /* CLOCK_MONOTONIC */
    uint8_t value;     /* byte the guest wrote */
    int have_counters; /* counters[] read at the mark */
    uint64_t counters[BOOT_TIMER_MAX_COUNTERS];
};

struct boot_timer {
    /* Marks recorded so far (may exceed BOOT_TIMER_MAX_MARKS; only that
     * many are kept). Updated atomically from vCPU threads. */
    unsigned int nr_marks;
    struct boot_timer_mark marks[BOOT_TIMER_MAX_MARKS];
    /* Clock source; NULL means CLOCK_MONOTONIC (tests pass a fake). */
    uint64_t (*now_ns)(void);
    /* Optional counters read at each mark, on the writing vCPU's thread:
     * nr_counters (at most BOOT_TIMER_MAX_COUNTERS) values into out; 0 or
     * -errno (the mark then has none). */
    int (*read_counters)(void *ctx, uint64_t *out, unsigned int nr);
    void *counters_ctx;
    unsigned int nr_counters;
};

/* Bus handlers for the one port; opaque is the struct boot_timer. */
extern const struct bus_dev_ops boot_timer_bus_ops;

#endif
