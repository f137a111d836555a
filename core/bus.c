#include "core/bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint64_t base, uint64_t size,
                 const struct bus_dev_ops *ops, void *opaque)
{
    uint64_t last;
    if (size == 0 || !ops || __builtin_add_overflow(base, size - 1, &last))
        return -EINVAL;
    if (bus->nr_ranges == BUS_MAX_RANGES)
        return -ENOSPC;
    unsigned int i = 0;
    while (i < bus->nr_ranges && bus->ranges[i].base < base)
        i++;
    /* Neighbours are sorted, so only the ones on each side can overlap. */
    if (i > 0) {
        const struct bus_range *prev = &bus->ranges[i - 1];
        if (prev->base + (prev->size - 1) >= base)
            return -EEXIST;
    }
    if (i < bus->nr_ranges && bus->ranges[i].base <= last)
        return -EEXIST;
    memmove(&bus->ranges[i + 1], &bus->ranges[i],
            (bus->nr_ranges - i) * sizeof(bus->ranges[0]));
    bus->ranges[i] = (struct bus_range){base, size, ops, opaque};
    bus->nr_ranges++;
    return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
                                        uint32_t len)
{
    uint64_t last;
    if (__builtin_add_overflow(addr, (uint64_t)len - 1, &last))
        return NULL;
    unsigned int lo = 0, hi = bus->nr_ranges;
    while (lo < hi) {
        unsigned int mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->size)
            lo = mid + 1;
        else
            return last - r->base < r->size ? r : NULL;
    }
    return NULL;
}

static int bus_len_ok(uint32_t len)
{
    return len == 1 || len == 2 || len == 4 || len == 8;
}

int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len)
{
    if (!bus_len_ok(len))
        return -EINVAL;
    memset(data, 0, len);
    const struct bus_range *r = bus_find(bus, addr, len);
    if (!r)
        return -ENOENT;
    if (r->ops->read)
        r->ops->read(r->opaque, addr - r->base, data, len);
    return 0;
}

int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data,
              uint32_t len)
{
    if (!bus_len_ok(len))
        return -EINVAL;
    const struct bus_range *r = bus_find(bus, addr, len);
    if (!r)
        return -ENOENT;
    if (r->ops->write)
        r->ops->write(r->opaque, addr - r->base, data, len);
    return 0;
}
