/* Split virtqueues (virtio 1.2 §2.7), device side. The driver is hostile:
 * every ring field is copied once, checked, then used; every guest address
 * goes through gm_ptr; every chain walk is bounded. A queue that sees a
 * protocol violation turns broken and stays broken until reset; the caller
 * (the transport) then marks its device DEVICE_NEEDS_RESET. */
#ifndef RUNVM_VIRTQ_H
#define RUNVM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/guest_mem.h"

/* Largest queue size a device may offer, and the longest chain (direct
 * descriptors, or entries of one indirect table) a device accepts. */
#define VIRTQ_MAX_SIZE 1024
#define VIRTQ_MAX_IOV  VIRTQ_MAX_SIZE

/* One available buffer: the chain at avail ring slot `head`, resolved to
 * host iovecs. iov[0, out_num) are device-readable (driver → device),
 * iov[out_num, out_num + in_num) device-writable. */
struct virtq_elem {
    uint16_t head;
    uint16_t out_num;
    uint16_t in_num;
    uint64_t out_len; /* bytes the device may read */
    uint64_t in_len;  /* bytes the device may write */
    struct iovec iov[VIRTQ_MAX_IOV];
};

struct virtq {
    const struct guest_mem *mem;
    uint16_t size;  /* QueueNum, a power of two; 0 = not set up */
    bool ready;     /* rings validated and resolved */
    bool broken;    /* driver violated the protocol */
    bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    /* Host views of the three rings, resolved once by virtq_enable. */
    void *desc, *avail, *used;
    uint16_t last_avail;     /* next avail ring slot to consume */
    uint16_t used_idx;       /* shadow of used->idx (the device owns it) */
    uint16_t signalled_used; /* used_idx when the driver was last told */
    bool signalled_valid;
    uint64_t chains_popped; /* statistics */
};

/* Returns the queue to its reset state (not ready, size 0, addresses 0). */
void virtq_reset(struct virtq *vq);

/* Validates the set-up the driver wrote (size a power of two in
 * [1, max_size], ring alignment, ring extents inside guest RAM) and makes
 * the queue ready. 0 or -EINVAL (queue left not ready). */
int virtq_enable(struct virtq *vq, const struct guest_mem *mem,
                 uint16_t max_size, bool event_idx, bool indirect)
    __attribute__((warn_unused_result));

/* Takes the next available chain into elem. 1: elem filled; 0: nothing
 * available; -EIO: the driver broke the protocol (queue now broken). */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem);

/* Gives back the chain popped last, unconsumed (e.g. the backend had no
 * data after all). Must follow a successful virtq_pop with no push. */
void virtq_unpop(struct virtq *vq);

/* True when the driver has made a chain available (does not consume it). A
 * broken or not-ready queue has none. */
bool virtq_has_avail(struct virtq *vq);

/* Returns a chain to the driver as used, with `written` bytes written into
 * its writable part (clamped to elem->in_len). */
void virtq_push(struct virtq *vq, const struct virtq_elem *elem,
                uint64_t written);

/* After one or more pushes: true when the driver wants an interrupt (its
 * used_event with EVENT_IDX, else the absence of VRING_AVAIL_F_NO_INTERRUPT).
 * Consumes the "pending" state: a second call without a push says false
 * under EVENT_IDX. */
bool virtq_need_interrupt(struct virtq *vq);

/* One line of the ring indices (ours and the driver's), for diagnosing a
 * stalled queue: "size S avail A/L used U used_event E avail_event V". */
int virtq_describe(struct virtq *vq, char *buf, size_t len);

/* Copies from host buffer into the writable part of elem starting at byte
 * `offset` of that part. Returns bytes copied (short at the end). */
uint64_t virtq_elem_write(const struct virtq_elem *elem, uint64_t offset,
                          const void *src, uint64_t len);

/* Copies from the readable part of elem (from `offset`) into dst. Returns
 * bytes copied. */
uint64_t virtq_elem_read(const struct virtq_elem *elem, uint64_t offset,
                         void *dst, uint64_t len);

#endif
