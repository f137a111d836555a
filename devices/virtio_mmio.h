/* virtio-mmio transport, modern interface (virtio 1.2 §4.2.2, Version 2):
 * the register file a device model sits behind. It knows no KVM: MMIO
 * accesses come in through virtio_mmio_read/write (bus_dev_ops shaped),
 * queue notifications through virtio_mmio_notify (the VMM calls it when the
 * QueueNotify ioeventfd fires; a QueueNotify write lands there too), and
 * interrupts go out through the irq callback the VMM supplies (an irqfd).
 *
 * Locking: vCPU threads (register accesses) and the event-loop thread
 * (notifications, back-end I/O) share a device; every entry point here takes
 * dev->lock, and device ops are called with it held. A device's own event
 * loop callbacks take it with virtio_mmio_lock(). */
#ifndef RUNVM_VIRTIO_MMIO_H
#define RUNVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/virtq.h"
#include "core/bus.h"
#include "core/guest_mem.h"
#include "core/state.h"

#define VIRTIO_MMIO_MAX_QUEUES 4

/* Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register
 * Layout"). */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW     0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH    0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW      0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH     0x0a4
#define VIRTIO_MMIO_SHM_SEL             0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100
#define VIRTIO_MMIO_CONFIG_MAX          (0x1000 - VIRTIO_MMIO_CONFIG)

#define VIRTIO_MMIO_MAGIC  0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x4d565552 /* "RUVM" */

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE        0x01
#define VIRTIO_STATUS_DRIVER             0x02
#define VIRTIO_STATUS_DRIVER_OK          0x04
#define VIRTIO_STATUS_FEATURES_OK        0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED             0x80

/* InterruptStatus bits (§4.2.2). */
#define VIRTIO_MMIO_INT_VRING  0x1
#define VIRTIO_MMIO_INT_CONFIG 0x2

struct virtio_dev;

/* What a device model tells the transport. Every op runs with dev->lock
 * held. */
struct virtio_dev_ops {
    const char *name;   /* for messages: "virtio-console" */
    uint32_t device_id; /* §5: 3 console, 1 net */
    uint16_t num_queues;
    uint16_t queue_max; /* QueueNumMax of every queue, a power of two */
    /* The driver set DRIVER_OK: start the back-end. 0, or -errno which
     * marks the device DEVICE_NEEDS_RESET. */
    int (*activate)(struct virtio_dev *dev);
    /* Queue q may have new buffers (only called while the device is live:
     * DRIVER_OK, not needing reset, q ready). */
    void (*queue_notify)(struct virtio_dev *dev, unsigned int q);
    /* The device is being reset (driver wrote 0 to Status) or stalled:
     * forget popped chains and stop back-end I/O. May be NULL. */
    void (*reset)(struct virtio_dev *dev);
    /* The driver wrote [offset, offset+len) of the config space (already
     * bounds-checked and copied into dev->config). May be NULL: config
     * then is read-only and writes are ignored. */
    void (*config_write)(struct virtio_dev *dev, uint32_t offset, uint32_t len);

    /* Snapshots (virtio_mmio_save, virtio_mmio_restore). Each may be NULL:
     * a model that never keeps a chain between calls, or has no state of
     * its own. */
    /* How many chains the model popped from queue q (ready) and has not
     * pushed yet; they must be the last ones it popped from q. The
     * snapshot records q as if they had never been popped: host pointers
     * into them cannot be saved, and the restored device pops them again
     * from guest RAM, where the driver left them untouched. */
    unsigned int (*held_chains)(struct virtio_dev *dev, unsigned int q);
    /* Appends the model's own state: a leading u32 version of its
     * layout, then nothing that is a back-end resource (fds, event loop
     * registrations). */
    void (*save)(struct virtio_dev *dev, struct state_w *w);
    /* Reads what save wrote (r holds exactly those bytes) and checks
     * every value and state_r_done before acting on any, after the
     * transport restored its own state (status, features, ready queues);
     * held chains are in the ring again. Takes up the back-end (what
     * activate would have set up) without activate's guest-visible
     * effects; the transport then processes every ready queue as if
     * notified. 0, -EBADMSG for bytes no device could have written, or
     * -errno when the back-end cannot be set up. The transport resets the
     * device (the reset op) after a failure. */
    int (*restore)(struct virtio_dev *dev, struct state_r *r);
};

/* Raises the device's interrupt line (an edge: the VMM writes an irqfd). */
typedef void (*virtio_irq_fn)(void *opaque);

struct virtio_queue_regs {
    struct virtq vq;
    bool ready; /* QueueReady as the driver sees it */
};

struct virtio_dev {
    const struct virtio_dev_ops *ops;
    void *opaque; /* the device model */
    const struct guest_mem *mem;
    virtio_irq_fn irq;
    void *irq_opaque;
    pthread_mutex_t lock;

    uint64_t device_features; /* offered; transport adds its own bits */
    uint64_t driver_features; /* accepted by the driver */
    uint8_t *config;          /* device-specific config space */
    uint32_t config_size;
    uint32_t config_generation;

    uint32_t status;
    uint32_t interrupt_status;
    uint32_t device_features_sel;
    uint32_t driver_features_sel;
    uint32_t queue_sel;
    struct virtio_queue_regs queues[VIRTIO_MMIO_MAX_QUEUES];

    /* Statistics, for benchmarks. */
    uint64_t notifies;
    uint64_t interrupts;
};

/* Ring features the transport implements; a device ORs in those it wants
 * offered (a benchmark may leave EVENT_IDX out to compare). */
#define VIRTIO_MMIO_RING_FEATURES                                              \
    ((1ULL << 28) /* VIRTIO_RING_F_INDIRECT_DESC */ |                          \
     (1ULL << 29) /* VIRTIO_RING_F_EVENT_IDX */)

/* Sets up dev for a device model. device_features are the feature bits
 * offered (device-specific and ring bits); the transport adds
 * VIRTIO_F_VERSION_1, which it requires. config/config_size: the model's config
 * space (read by the driver through offset 0x100+). 0 or -EINVAL. */
int virtio_mmio_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops,
                     void *opaque, const struct guest_mem *mem,
                     uint64_t device_features, void *config,
                     uint32_t config_size, virtio_irq_fn irq, void *irq_opaque)
    __attribute__((warn_unused_result));

/* Appends dev's state to w for a snapshot, with the guest at rest (no
 * vCPU in KVM_RUN, no device callback running): the register file, every
 * queue's set-up and ring positions (chains the model holds counted as
 * not yet popped, see held_chains), then the model's own (ops->save).
 * 0 or -ENOMEM. */
int virtio_mmio_save(struct virtio_dev *dev, struct state_w *w)
    __attribute__((warn_unused_result));

/* Restores what virtio_mmio_save wrote onto dev, fresh from
 * virtio_mmio_init with the same ops and options, on guest RAM that holds
 * the snapshot's memory. A device that was DRIVER_OK is live again
 * without its activate op; then, because notifications pending at the
 * save died with the old VMM's ioeventfds, every ready queue is processed
 * as if notified, and an InterruptStatus the driver had not acknowledged
 * raises the interrupt again (the driver reads InterruptStatus, so a
 * repeated edge is harmless where a lost one is not). Both may raise the
 * interrupt: call it once the VM's interrupt controller is restored. The
 * bytes are untrusted: 0; -EBADMSG when they are short, long, or hold
 * anything the device could not be in (dev is then as virtio_mmio_init
 * left it, safe to free or use); -EBUSY when dev is not fresh; or the
 * model's -errno. */
int virtio_mmio_restore(struct virtio_dev *dev, struct state_r *r)
    __attribute__((warn_unused_result));

/* Releases what virtio_mmio_init took (the lock). */
void virtio_mmio_free(struct virtio_dev *dev);

/* Register-file access handlers; offset is relative to the 4 KiB window.
 * Suitable as bus_dev_ops with dev as opaque (see virtio_mmio_bus_ops). */
void virtio_mmio_read(void *dev, uint64_t offset, uint8_t *data, uint32_t len);
void virtio_mmio_write(void *dev, uint64_t offset, const uint8_t *data,
                       uint32_t len);
extern const struct bus_dev_ops virtio_mmio_bus_ops;

/* Queue q was notified (the VMM's QueueNotify ioeventfd fired). Ignores an
 * out-of-range q or a device that is not live. */
void virtio_mmio_notify(struct virtio_dev *dev, unsigned int q);

/* Takes and releases dev->lock, for device back-end callbacks that run
 * outside the transport's entry points. */
void virtio_mmio_lock(struct virtio_dev *dev);
void virtio_mmio_unlock(struct virtio_dev *dev);

/* The following are for device models, called with dev->lock held. */

/* Queue q, or NULL when q is out of range or the device is not live. */
struct virtq *virtio_mmio_queue(struct virtio_dev *dev, unsigned int q);

/* After pushing used buffers on queue q: raises the interrupt when the
 * driver asked for one. */
void virtio_mmio_used(struct virtio_dev *dev, unsigned int q);

/* The driver broke the protocol (or the back-end failed for good): sets
 * DEVICE_NEEDS_RESET, stops the device's I/O and tells the driver through a
 * config-change interrupt. The rest of the VM carries on. */
void virtio_mmio_fail(struct virtio_dev *dev, const char *why);

/* True while the driver has set DRIVER_OK and the device needs no reset. */
bool virtio_mmio_live(const struct virtio_dev *dev);

/* The device changed its config space: bumps ConfigGeneration and raises a
 * config-change interrupt once the driver is live. */
void virtio_mmio_config_changed(struct virtio_dev *dev);

/* Writes the device status, InterruptStatus and every queue's ring indices
 * to f, one line each, prefixed "runvm: NAME": for a stalled device. */
void virtio_mmio_dump(struct virtio_dev *dev, FILE *f);

/* Feature bit negotiated (both offered and accepted). */
bool virtio_mmio_has_feature(const struct virtio_dev *dev, unsigned int bit);

#endif
