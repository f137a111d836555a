/* A hostile virtio driver for fuzz targets: reads operations from a fuzz
 * input and carries them out on a virtio-mmio device the way a guest
 * would (register reads and writes, feature negotiation, queue set-up,
 * descriptor chains, avail ring updates, notifications, stray writes to
 * guest RAM), checking the transport's promises after each one. The
 * device model behind it is the target's; so are its back-end operations.
 *
 * Guest RAM is VIRTIO_DRIVER_RAM bytes at guest address 0: queue q's rings
 * at q * 0x2000 (descriptors, avail at +0x1000, used at +0x1400), buffers
 * and indirect tables from VIRTIO_DRIVER_BUF up. */
#ifndef RUNVM_FUZZ_VIRTIO_DRIVER_H
#define RUNVM_FUZZ_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/guest_mem.h"
#include "devices/virtio_mmio.h"
#include "tests/fuzz/cursor.h"

#define VIRTIO_DRIVER_RAM 0x10000
#define VIRTIO_DRIVER_BUF 0x8000

/* An operation is one byte: its low four bits pick the kind. Kinds below
 * VIRTIO_DRIVER_KINDS are the driver's; the others, with the byte's high
 * four bits, are left to the target (its back-end: host side of the fds,
 * event loop). */
enum virtio_driver_kind {
    VD_WRITE_REG,   /* u8 register (offset / 4, top bits: odd length), u32 */
    VD_READ,        /* u16 offset, u8 length selector */
    VD_NEGOTIATE,   /* u32, u32: mask over the offered features */
    VD_QUEUE_SETUP, /* u8 queue, u8 size (log2, or raw with bit 7) */
    VD_DRIVER_OK,   /* sets DRIVER_OK on top of the status read back */
    VD_CHAIN,       /* u8 queue, u8 shape, per descriptor u16 len + data */
    VD_DESC,        /* u8 queue, u16 index, u16 addr, u16 len, u8, u16 next */
    VD_PUBLISH,     /* u8 queue, u16 head */
    VD_NOTIFY,      /* u8 queue (any value: QueueNotify) */
    VD_POKE,        /* u16 gpa, u8 length, bytes: anything into guest RAM */
    VD_AVAIL_CTL,   /* u8 queue, u16 avail flags, u16 used_event */
    VD_CONFIG,      /* u8 offset, u8 length selector, u32 value */
    VD_INT_ACK,     /* acks what InterruptStatus reads */
    VD_RESET,       /* Status 0 */
    VIRTIO_DRIVER_KINDS
};

struct virtio_driver_queue {
    uint16_t size; /* 0: not set up by VD_QUEUE_SETUP */
    uint64_t desc, avail, used;
    uint16_t avail_idx; /* the driver's next avail index */
    uint16_t next_desc; /* next descriptor VD_CHAIN fills */
};

struct virtio_driver {
    struct virtio_dev *dev;
    struct guest_mem *mem;
    struct virtio_driver_queue q[VIRTIO_MMIO_MAX_QUEUES];
    uint32_t buf_next;   /* VD_CHAIN's next buffer address */
    bool saw_need_reset; /* DEVICE_NEEDS_RESET seen, no reset since */
};

/* Maps the fake guest RAM once per process and zeroes it. Returns the
 * memory, or NULL if it cannot be mapped. */
struct guest_mem *virtio_driver_ram(void);

/* Starts driving dev (set up by the target on virtio_driver_ram()). */
void virtio_driver_init(struct virtio_driver *d, struct virtio_dev *dev,
                        struct guest_mem *mem);

/* Carries out operation `op` (kind below VIRTIO_DRIVER_KINDS), reading
 * its arguments from in, then checks the transport's invariants (aborts
 * when one fails). */
void virtio_driver_step(struct virtio_driver *d, uint8_t op, struct cursor *in);

/* The transport's invariants, for a target to check after its own
 * operations too: InterruptStatus holds only defined bits,
 * DEVICE_NEEDS_RESET stays until a reset, no queue has more chains used
 * than it handed out, an out-of-range queue is never made ready. */
void virtio_driver_check(struct virtio_driver *d);

#endif
