#include "devices/virtq.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>

/* Ring fields are little-endian (virtio 1.x); runvm's hosts (x86-64,
 * aarch64) are too, so they are read without swapping. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtq.c assumes a little-endian host"
#endif

/* virtio 1.2 §2.7: the three parts of a split virtqueue. The driver area
 * (avail) and device area (used) end with the event-index fields, which are
 * always part of their extent. */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

static uint64_t desc_bytes(uint16_t size)
{
    return 16ULL * size;
}

static uint64_t avail_bytes(uint16_t size)
{
    return 6ULL + 2ULL * size; /* flags, idx, ring[size], used_event */
}

static uint64_t used_bytes(uint16_t size)
{
    return 6ULL + 8ULL * size; /* flags, idx, ring[size], avail_event */
}

/* Field accessors. The rings live in memory the guest writes concurrently,
 * so every shared field is loaded exactly once into a local. */
static uint16_t *avail_flags(struct virtq *vq)
{
    return (uint16_t *)vq->avail;
}

static uint16_t *avail_idx(struct virtq *vq)
{
    return (uint16_t *)vq->avail + 1;
}

static uint16_t *avail_ring(struct virtq *vq, uint16_t slot)
{
    return (uint16_t *)vq->avail + 2 + slot;
}

static uint16_t *used_event(struct virtq *vq)
{
    return (uint16_t *)vq->avail + 2 + vq->size;
}

static uint16_t *used_idx(struct virtq *vq)
{
    return (uint16_t *)vq->used + 1;
}

static struct virtq_used_elem *used_ring(struct virtq *vq, uint16_t slot)
{
    return (struct virtq_used_elem *)((uint8_t *)vq->used + 4) + slot;
}

static uint16_t *avail_event(struct virtq *vq)
{
    return (uint16_t *)((uint8_t *)vq->used + 4 + 8ULL * vq->size);
}

void virtq_reset(struct virtq *vq)
{
    memset(vq, 0, sizeof(*vq));
}

int virtq_enable(struct virtq *vq, const struct guest_mem *mem,
                 uint16_t max_size, bool event_idx, bool indirect)
{
    uint16_t size = vq->size;
    vq->ready = false;
    if (size == 0 || size > max_size || size > VIRTQ_MAX_SIZE ||
        (size & (size - 1)) != 0)
        return -EINVAL;
    /* §2.7: alignment 16 for the descriptor table, 2 for the driver area,
     * 4 for the device area. */
    if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4)
        return -EINVAL;
    void *desc = gm_ptr(mem, vq->desc_gpa, desc_bytes(size));
    void *avail = gm_ptr(mem, vq->avail_gpa, avail_bytes(size));
    void *used = gm_ptr(mem, vq->used_gpa, used_bytes(size));
    if (!desc || !avail || !used)
        return -EINVAL;
    vq->mem = mem;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->event_idx = event_idx;
    vq->indirect = indirect;
    vq->broken = false;
    /* §2.7.13: a fresh queue starts at index 0 on both sides; the driver
     * zeroed the used ring before QueueReady. */
    vq->last_avail = 0;
    vq->used_idx = 0;
    vq->signalled_valid = false;
    vq->ready = true;
    return 0;
}

static int virtq_break(struct virtq *vq)
{
    vq->broken = true;
    return -EIO;
}

/* Number of chains the driver has made available past last_avail, or -EIO
 * if its avail->idx is impossible. Arms notification (avail_event) first
 * when EVENT_IDX is on and nothing is pending, so a chain added after this
 * check is always announced by a kick. */
static int virtq_pending(struct virtq *vq)
{
    /* Acquire pairs with the driver's virtio_wmb() before it publishes
     * avail->idx (virtqueue_add_split): ring entries we read after this
     * load are the ones it wrote before the index. */
    uint16_t idx = __atomic_load_n(avail_idx(vq), __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(idx - vq->last_avail);
    if (pending == 0 && vq->event_idx) {
        __atomic_store_n(avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
        /* Full barrier: our avail_event store must be visible before we
         * re-read avail->idx. Pairs with the virtio_mb() in the driver's
         * virtqueue_kick_prepare_split between its avail->idx store and its
         * avail_event load; one of the two sides sees the other. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        idx = __atomic_load_n(avail_idx(vq), __ATOMIC_ACQUIRE);
        pending = (uint16_t)(idx - vq->last_avail);
    }
    /* §2.7.13.3: the driver cannot have more chains outstanding than the
     * queue has entries. */
    if (pending > vq->size)
        return virtq_break(vq);
    return pending;
}

bool virtq_has_avail(struct virtq *vq)
{
    if (!vq->ready || vq->broken)
        return false;
    return virtq_pending(vq) > 0;
}

/* Appends one descriptor's buffer to elem, checking it lies in RAM and that
 * device-writable buffers come after all device-readable ones (§2.7.4.2). */
static int elem_add(struct virtq *vq, struct virtq_elem *elem,
                    const struct virtq_desc *d)
{
    unsigned int n = elem->out_num + elem->in_num;
    if (n >= VIRTQ_MAX_IOV)
        return virtq_break(vq);
    void *p = gm_ptr(vq->mem, d->addr, d->len);
    if (!p)
        return virtq_break(vq);
    if (d->flags & VRING_DESC_F_WRITE) {
        elem->in_num++;
        elem->in_len += d->len;
    } else {
        if (elem->in_num > 0)
            return virtq_break(vq);
        elem->out_num++;
        elem->out_len += d->len;
    }
    elem->iov[n].iov_base = p;
    elem->iov[n].iov_len = d->len;
    return 0;
}

/* Walks the chain starting at descriptor `head`. The walk visits at most
 * `max` descriptors of its table, so a looping chain is caught. */
static int virtq_walk(struct virtq *vq, struct virtq_elem *elem, uint16_t head)
{
    const struct virtq_desc *table = vq->desc;
    uint32_t max = vq->size;
    struct virtq_desc d;

    memcpy(&d, &table[head], sizeof(d)); /* copy once, then check */
    if (d.flags & VRING_DESC_F_INDIRECT) {
        /* §2.7.5.3: an indirect descriptor stands alone and points at a
         * table of whole descriptors; we accept it only as the head. */
        if (!vq->indirect || (d.flags & VRING_DESC_F_NEXT) || d.len == 0 ||
            d.len % sizeof(d) != 0 || d.len / sizeof(d) > VIRTQ_MAX_IOV)
            return virtq_break(vq);
        table = gm_ptr(vq->mem, d.addr, d.len);
        if (!table)
            return virtq_break(vq);
        max = d.len / sizeof(d);
        memcpy(&d, &table[0], sizeof(d));
    }
    for (uint32_t count = 1;; count++) {
        if (d.flags & VRING_DESC_F_INDIRECT)
            return virtq_break(vq); /* nested or not at the head */
        int ret = elem_add(vq, elem, &d);
        if (ret < 0)
            return ret;
        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        if (d.next >= max || count >= max)
            return virtq_break(vq); /* out of the table, or a loop */
        memcpy(&d, &table[d.next], sizeof(d));
    }
}

int virtq_pop(struct virtq *vq, struct virtq_elem *elem)
{
    if (vq->broken)
        return -EIO;
    if (!vq->ready)
        return 0;
    int pending = virtq_pending(vq);
    if (pending <= 0)
        return pending;
    uint16_t head = __atomic_load_n(avail_ring(vq, vq->last_avail % vq->size),
                                    __ATOMIC_RELAXED);
    if (head >= vq->size)
        return virtq_break(vq);
    elem->head = head;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    int ret = virtq_walk(vq, elem, head);
    if (ret < 0)
        return ret;
    vq->last_avail++;
    vq->chains_popped++;
    return 1;
}

void virtq_unpop(struct virtq *vq)
{
    vq->last_avail--;
}

void virtq_push(struct virtq *vq, const struct virtq_elem *elem,
                uint64_t written)
{
    if (!vq->ready || vq->broken)
        return;
    if (written > elem->in_len)
        written = elem->in_len;
    if (written > UINT32_MAX)
        written = UINT32_MAX; /* a chain may describe more than 4 GiB */
    struct virtq_used_elem *u = used_ring(vq, vq->used_idx % vq->size);
    u->id = elem->head;
    u->len = (uint32_t)written;
    vq->used_idx++;
    /* Release pairs with the driver's virtio_rmb() after it reads used->idx
     * (virtqueue_get_buf_ctx_split): it sees the element before the index
     * that covers it. */
    __atomic_store_n(used_idx(vq), vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_need_interrupt(struct virtq *vq)
{
    if (!vq->ready || vq->broken)
        return false;
    /* Full barrier: our used->idx store must be visible before we read the
     * driver's suppression state. Pairs with the virtio_mb() in the
     * driver's virtqueue_enable_cb_delayed/virtqueue_poll between its
     * used_event (or flags) store and its used->idx re-read. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = vq->signalled_used, new = vq->used_idx;
    bool valid = vq->signalled_valid;
    vq->signalled_used = new;
    vq->signalled_valid = true;
    if (valid && old == new)
        return false; /* nothing pushed since the last interrupt */
    if (!vq->event_idx) {
        uint16_t flags = __atomic_load_n(avail_flags(vq), __ATOMIC_RELAXED);
        return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (!valid)
        return true;
    uint16_t event = __atomic_load_n(used_event(vq), __ATOMIC_RELAXED);
    /* §2.7.10: interrupt iff used_event lies in [old, new). */
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

int virtq_describe(struct virtq *vq, char *buf, size_t len)
{
    if (!vq->ready)
        return snprintf(buf, len, "not ready");
    return snprintf(buf, len,
                    "size %u avail %u/%u used %u/%u used_event %u "
                    "avail_event %u flags 0x%x%s",
                    vq->size, __atomic_load_n(avail_idx(vq), __ATOMIC_RELAXED),
                    vq->last_avail, vq->used_idx, vq->signalled_used,
                    __atomic_load_n(used_event(vq), __ATOMIC_RELAXED),
                    __atomic_load_n(avail_event(vq), __ATOMIC_RELAXED),
                    __atomic_load_n(avail_flags(vq), __ATOMIC_RELAXED),
                    vq->broken ? " broken" : "");
}

/* Copies len bytes between the iovecs and a buffer, starting `offset`
 * bytes into the iovecs: from `in` into them when in is set, else out of
 * them into `out`. Returns the bytes copied (short where the iovecs end). */
static uint64_t iov_copy(const struct iovec *iov, unsigned int count,
                         uint64_t offset, uint8_t *out, const uint8_t *in,
                         uint64_t len)
{
    uint64_t done = 0;
    for (unsigned int i = 0; i < count && done < len; i++) {
        uint64_t seg = iov[i].iov_len;
        if (offset >= seg) {
            offset -= seg;
            continue;
        }
        uint64_t n = seg - offset;
        if (n > len - done)
            n = len - done;
        uint8_t *at = (uint8_t *)iov[i].iov_base + offset;
        if (in)
            memcpy(at, in + done, n);
        else
            memcpy(out + done, at, n);
        done += n;
        offset = 0;
    }
    return done;
}

uint64_t virtq_elem_write(const struct virtq_elem *elem, uint64_t offset,
                          const void *src, uint64_t len)
{
    /* The device-writable part follows the readable one (virtq_pop). */
    return iov_copy(&elem->iov[elem->out_num], elem->in_num, offset, NULL, src,
                    len);
}

uint64_t virtq_elem_read(const struct virtq_elem *elem, uint64_t offset,
                         void *dst, uint64_t len)
{
    return iov_copy(elem->iov, elem->out_num, offset, dst, NULL, len);
}
