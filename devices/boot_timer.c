#include "devices/boot_timer.h"

#include <time.h>

#include "core/clock.h"

static void boot_timer_write(void *opaque, uint64_t offset, const uint8_t *data,
                             uint32_t len)
{
    struct boot_timer *bt = opaque;
    (void)offset;
    (void)len;
    uint64_t now = bt->now_ns ? bt->now_ns() : clock_now_ns();
    /* A slot per write, claimed atomically: vCPUs may race. */
    unsigned int i = __atomic_fetch_add(&bt->nr_marks, 1, __ATOMIC_RELAXED);
    if (i >= BOOT_TIMER_MAX_MARKS)
        return;
    bt->marks[i].value = data[0];
    unsigned int nr = bt->nr_counters;
    if (nr > BOOT_TIMER_MAX_COUNTERS)
        nr = BOOT_TIMER_MAX_COUNTERS;
    bt->marks[i].have_counters =
        bt->read_counters && nr &&
        bt->read_counters(bt->counters_ctx, bt->marks[i].counters, nr) == 0;
    /* Publish the mark after its contents; readers load nr_marks acquire
     * only after the vCPU threads are joined, so this is belt and braces. */
    __atomic_store_n(&bt->marks[i].ns, now, __ATOMIC_RELEASE);
}

const struct bus_dev_ops boot_timer_bus_ops = {
    .read = NULL, /* reads 0 */
    .write = boot_timer_write,
};
