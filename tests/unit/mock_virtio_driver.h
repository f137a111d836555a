/* A mock virtio driver for unit tests: writes split rings and descriptors
 * into fake guest RAM (a small gm_init) the way a guest driver would, and
 * drives a virtio-mmio register file through its access handlers. */
#ifndef RUNVM_MOCK_VIRTIO_DRIVER_H
#define RUNVM_MOCK_VIRTIO_DRIVER_H

#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "core/guest_mem.h"

struct mock_vq {
    struct guest_mem *mem;
    uint16_t size;
    uint64_t desc, avail, used; /* ring addresses in guest RAM */
    uint16_t avail_idx;         /* driver's next avail index */
    uint16_t last_used;         /* driver's next used index to read */
};

/* Places a queue of `size` entries at guest address base (desc, then avail,
 * then used, each 4 KiB-aligned) and zeroes the rings. */
void mock_vq_init(struct mock_vq *m, struct guest_mem *mem, uint16_t size,
                  uint64_t base);
/* Writes descriptor i. */
void mock_desc(struct mock_vq *m, uint16_t i, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next);
/* Puts head in the next avail slot and publishes it (avail->idx++). */
void mock_publish(struct mock_vq *m, uint16_t head);
/* Sets avail->idx directly (for hostile cases). */
void mock_set_avail_idx(struct mock_vq *m, uint16_t idx);
/* Sets avail->flags and used_event. */
void mock_set_avail_flags(struct mock_vq *m, uint16_t flags);
void mock_set_used_event(struct mock_vq *m, uint16_t event);
/* Next used element: 1 and id/len filled, or 0 when none. */
int mock_used(struct mock_vq *m, uint32_t *id, uint32_t *len);
/* avail_event the device published (used->ring[size]). */
uint16_t mock_avail_event(struct mock_vq *m);

/* 32-bit register access to a virtio-mmio device. */
uint32_t mock_rd(struct virtio_dev *dev, uint64_t offset);
void mock_wr(struct virtio_dev *dev, uint64_t offset, uint32_t value);
/* The Linux-style start-up sequence up to (not including) DRIVER_OK:
 * reset, ACK, DRIVER, features (low 32 and high 32 bits), FEATURES_OK.
 * Returns the status read back. */
uint32_t mock_negotiate(struct virtio_dev *dev, uint64_t features);
/* Programs queue q from m and sets QueueReady. */
void mock_queue_setup(struct virtio_dev *dev, unsigned int q,
                      const struct mock_vq *m);

#endif
