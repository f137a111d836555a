/* An address bus (one for MMIO, one for port I/O): devices register
 * non-overlapping ranges and get the accesses that fall into them. */
#ifndef RUNVM_BUS_H
#define RUNVM_BUS_H

#include <stdint.h>

#define BUS_MAX_RANGES 32

/* A device's access handlers. offset is relative to the range's base; len
 * is 1, 2, 4 or 8. read must fill all len bytes of data (the bus zeroes the
 * buffer first, so a handler that ignores a register reads 0). */
struct bus_dev_ops {
    void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
    void (*write)(void *opaque, uint64_t offset, const uint8_t *data,
                  uint32_t len);
};

struct bus_range {
    uint64_t base;
    uint64_t size;
    const struct bus_dev_ops *ops;
    void *opaque;
};

struct bus {
    struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base */
    unsigned int nr_ranges;
};

/* Adds [base, base+size). -EINVAL for size 0 or a range that wraps,
 * -EEXIST if it overlaps a registered one, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t size,
                 const struct bus_dev_ops *ops, void *opaque)
    __attribute__((warn_unused_result));

/* Dispatches an access. Returns 0 if a device took it, -ENOENT if no range
 * covers [addr, addr+len) (a read then yields zeroes), -EINVAL for a bad
 * len. An access straddling two ranges is refused. */
int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len);
int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data,
              uint32_t len);

#endif
