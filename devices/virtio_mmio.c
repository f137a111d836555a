#include "devices/virtio_mmio.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>

const struct bus_dev_ops virtio_mmio_bus_ops = {
    .read = virtio_mmio_read,
    .write = virtio_mmio_write,
};

int virtio_mmio_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops,
                     void *opaque, const struct guest_mem *mem,
                     uint64_t device_features, void *config,
                     uint32_t config_size, virtio_irq_fn irq, void *irq_opaque)
{
    if (!ops || !mem || !irq || ops->num_queues == 0 ||
        ops->num_queues > VIRTIO_MMIO_MAX_QUEUES || ops->queue_max == 0 ||
        ops->queue_max > VIRTQ_MAX_SIZE ||
        (ops->queue_max & (ops->queue_max - 1)) != 0 ||
        config_size > VIRTIO_MMIO_CONFIG_MAX)
        return -EINVAL;
    memset(dev, 0, sizeof(*dev));
    int ret = pthread_mutex_init(&dev->lock, NULL);
    if (ret)
        return -ret;
    dev->ops = ops;
    dev->opaque = opaque;
    dev->mem = mem;
    dev->irq = irq;
    dev->irq_opaque = irq_opaque;
    dev->device_features = device_features | (1ULL << VIRTIO_F_VERSION_1);
    dev->config = config;
    dev->config_size = config_size;
    return 0;
}

void virtio_mmio_free(struct virtio_dev *dev)
{
    if (dev->ops)
        pthread_mutex_destroy(&dev->lock);
    dev->ops = NULL;
}

void virtio_mmio_lock(struct virtio_dev *dev)
{
    pthread_mutex_lock(&dev->lock);
}

void virtio_mmio_unlock(struct virtio_dev *dev)
{
    pthread_mutex_unlock(&dev->lock);
}

bool virtio_mmio_live(const struct virtio_dev *dev)
{
    return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
           !(dev->status &
             (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

bool virtio_mmio_has_feature(const struct virtio_dev *dev, unsigned int bit)
{
    return bit < 64 &&
           (dev->driver_features & dev->device_features & (1ULL << bit));
}

/* The selected queue, or NULL: an out-of-range QueueSel is never used as an
 * index (§4.2.2: such a queue reads as QueueNumMax 0, not available). */
static struct virtio_queue_regs *selected_queue(struct virtio_dev *dev)
{
    if (dev->queue_sel >= dev->ops->num_queues)
        return NULL;
    return &dev->queues[dev->queue_sel];
}

struct virtq *virtio_mmio_queue(struct virtio_dev *dev, unsigned int q)
{
    if (q >= dev->ops->num_queues || !virtio_mmio_live(dev) ||
        !dev->queues[q].ready)
        return NULL;
    return &dev->queues[q].vq;
}

static void raise_interrupt(struct virtio_dev *dev, uint32_t why)
{
    dev->interrupt_status |= why;
    dev->interrupts++;
    dev->irq(dev->irq_opaque);
}

void virtio_mmio_used(struct virtio_dev *dev, unsigned int q)
{
    if (q >= dev->ops->num_queues || !virtio_mmio_live(dev))
        return;
    if (virtq_need_interrupt(&dev->queues[q].vq))
        raise_interrupt(dev, VIRTIO_MMIO_INT_VRING);
}

void virtio_mmio_dump(struct virtio_dev *dev, FILE *f)
{
    virtio_mmio_lock(dev);
    fprintf(f, "runvm: %s: status 0x%x interrupt_status 0x%x\n", dev->ops->name,
            dev->status, dev->interrupt_status);
    for (unsigned int q = 0; q < dev->ops->num_queues; q++) {
        char line[160];
        virtq_describe(&dev->queues[q].vq, line, sizeof(line));
        fprintf(f, "runvm: %s: queue %u: %s\n", dev->ops->name, q, line);
    }
    virtio_mmio_unlock(dev);
}

void virtio_mmio_config_changed(struct virtio_dev *dev)
{
    dev->config_generation++;
    if (virtio_mmio_live(dev))
        raise_interrupt(dev, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_fail(struct virtio_dev *dev, const char *why)
{
    if (dev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return;
    bool was_live = virtio_mmio_live(dev);
    fprintf(stderr,
            "runvm: %s: guest driver error: %s; device stopped until the "
            "guest resets it\n",
            dev->ops->name, why);
    dev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    if (dev->ops->reset)
        dev->ops->reset(dev);
    /* §2.1.2: a device that sets DEVICE_NEEDS_RESET after DRIVER_OK sends
     * a configuration change notification. */
    if (was_live)
        raise_interrupt(dev, VIRTIO_MMIO_INT_CONFIG);
}

/* Status 0: back to the state after power-on (§2.1, §4.2.3.1). */
static void device_reset(struct virtio_dev *dev)
{
    if (dev->ops->reset)
        dev->ops->reset(dev);
    dev->status = 0;
    dev->interrupt_status = 0;
    dev->driver_features = 0;
    dev->device_features_sel = 0;
    dev->driver_features_sel = 0;
    dev->queue_sel = 0;
    for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
        virtq_reset(&dev->queues[i].vq);
        dev->queues[i].ready = false;
    }
}

/* §2.2: FEATURES_OK only if the driver accepted a subset of what was
 * offered, including VERSION_1 (this is a modern-only device). */
static bool features_acceptable(const struct virtio_dev *dev)
{
    return (dev->driver_features & ~dev->device_features) == 0 &&
           (dev->driver_features & (1ULL << VIRTIO_F_VERSION_1));
}

static void write_status(struct virtio_dev *dev, uint32_t value)
{
    if (value == 0) {
        device_reset(dev);
        return;
    }
    uint32_t old = dev->status;
    /* The driver writes back what it read plus new bits; NEEDS_RESET is the
     * device's to set, so the driver can neither set nor clear it. */
    value = (value & 0xff & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
            (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    if (old & ~value) {
        /* §2.1.1: the driver MUST NOT clear a device status bit. */
        virtio_mmio_fail(dev, "status bits cleared without a reset");
        return;
    }
    uint32_t added = value & ~old;
    if (added & VIRTIO_STATUS_FEATURES_OK) {
        if (!(value & VIRTIO_STATUS_DRIVER) || !features_acceptable(dev))
            value &= ~VIRTIO_STATUS_FEATURES_OK; /* §3.1.1 step 6 */
    }
    if ((added & VIRTIO_STATUS_DRIVER_OK) &&
        !(value & VIRTIO_STATUS_FEATURES_OK)) {
        dev->status = value & ~VIRTIO_STATUS_DRIVER_OK;
        virtio_mmio_fail(dev, "DRIVER_OK before FEATURES_OK");
        return;
    }
    dev->status = value;
    if ((added & VIRTIO_STATUS_FAILED) && dev->ops->reset)
        dev->ops->reset(dev); /* the driver gave up: stop back-end I/O */
    if ((added & VIRTIO_STATUS_DRIVER_OK) && virtio_mmio_live(dev) &&
        dev->ops->activate) {
        int ret = dev->ops->activate(dev);
        if (ret < 0)
            virtio_mmio_fail(dev, "back-end could not start");
    }
}

static void write_queue_ready(struct virtio_dev *dev, uint32_t value)
{
    struct virtio_queue_regs *qr = selected_queue(dev);
    if (!qr)
        return;
    if (value == 0) {
        /* The driver takes the queue away (Linux does before deleting it):
         * keep the addresses it wrote, drop the ring state. */
        qr->ready = false;
        qr->vq.ready = false;
        return;
    }
    if (qr->ready)
        return;
    if (!(dev->status & VIRTIO_STATUS_FEATURES_OK)) {
        virtio_mmio_fail(dev, "QueueReady before FEATURES_OK");
        return;
    }
    bool event_idx = virtio_mmio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
    bool indirect = virtio_mmio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
    if (virtq_enable(&qr->vq, dev->mem, dev->ops->queue_max, event_idx,
                     indirect) < 0) {
        virtio_mmio_fail(dev, "queue size or ring addresses invalid");
        return;
    }
    qr->ready = true;
}

/* Writes one 32-bit half of a 64-bit queue address, while the queue is not
 * ready (§4.2.2: the driver MUST NOT change them afterwards). */
static void write_queue_addr(struct virtio_dev *dev, uint64_t offset,
                             uint32_t value)
{
    struct virtio_queue_regs *qr = selected_queue(dev);
    if (!qr || qr->ready)
        return;
    uint64_t *field;
    switch (offset & ~0x7ULL) {
    case VIRTIO_MMIO_QUEUE_DESC_LOW: field = &qr->vq.desc_gpa; break;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW: field = &qr->vq.avail_gpa; break;
    default: field = &qr->vq.used_gpa; break;
    }
    if (offset & 4)
        *field = (*field & 0xffffffffULL) | ((uint64_t)value << 32);
    else
        *field = (*field & ~0xffffffffULL) | value;
}

static uint32_t read_register(struct virtio_dev *dev, uint64_t offset)
{
    struct virtio_queue_regs *qr;
    switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION: return 2;
    case VIRTIO_MMIO_DEVICE_ID: return dev->ops->device_id;
    case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        if (dev->device_features_sel > 1)
            return 0;
        return (uint32_t)(dev->device_features >>
                          (32 * dev->device_features_sel));
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
        qr = selected_queue(dev);
        return qr ? dev->ops->queue_max : 0;
    case VIRTIO_MMIO_QUEUE_READY:
        qr = selected_queue(dev);
        return qr ? qr->ready : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS: return dev->interrupt_status;
    case VIRTIO_MMIO_STATUS: return dev->status;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
        return 0xffffffff; /* §4.2.2: no such shared memory region */
    case VIRTIO_MMIO_CONFIG_GENERATION: return dev->config_generation;
    default: return 0; /* write-only or reserved */
    }
}

static void write_register(struct virtio_dev *dev, uint64_t offset,
                           uint32_t value)
{
    struct virtio_queue_regs *qr;
    switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        dev->device_features_sel = value;
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        dev->driver_features_sel = value;
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        /* Features are fixed once FEATURES_OK is set (§3.1.1). A bit above
         * 63 was never offered: keep it out of the mask, but remember it
         * by refusing FEATURES_OK through an impossible bit 63. */
        if (dev->status & VIRTIO_STATUS_FEATURES_OK)
            break;
        if (dev->driver_features_sel == 0)
            dev->driver_features =
                (dev->driver_features & ~0xffffffffULL) | value;
        else if (dev->driver_features_sel == 1)
            dev->driver_features = (dev->driver_features & 0xffffffffULL) |
                                   ((uint64_t)value << 32);
        else if (value)
            dev->driver_features |= 1ULL << 63;
        break;
    case VIRTIO_MMIO_QUEUE_SEL: dev->queue_sel = value; break;
    case VIRTIO_MMIO_QUEUE_NUM:
        qr = selected_queue(dev);
        if (qr && !qr->ready)
            /* Out-of-range sizes are refused at QueueReady; 0 is never
             * valid, so an oversized value maps to it. */
            qr->vq.size = value <= VIRTQ_MAX_SIZE ? (uint16_t)value : 0;
        break;
    case VIRTIO_MMIO_QUEUE_READY: write_queue_ready(dev, value); break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        /* Without VIRTIO_F_NOTIFICATION_DATA the value is the queue
         * index; the VMM normally catches this write with an ioeventfd. */
        pthread_mutex_unlock(&dev->lock);
        virtio_mmio_notify(dev, value);
        pthread_mutex_lock(&dev->lock);
        break;
    case VIRTIO_MMIO_INTERRUPT_ACK: dev->interrupt_status &= ~value; break;
    case VIRTIO_MMIO_STATUS: write_status(dev, value); break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
    case VIRTIO_MMIO_QUEUE_USED_LOW:
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
        write_queue_addr(dev, offset, value);
        break;
    default: break; /* read-only or reserved: ignored */
    }
}

/* Config space accesses must lie inside it; anything else reads 0. */
static bool config_range(const struct virtio_dev *dev, uint64_t offset,
                         uint32_t len, uint32_t *start)
{
    if (offset < VIRTIO_MMIO_CONFIG)
        return false;
    uint64_t off = offset - VIRTIO_MMIO_CONFIG;
    if (off >= dev->config_size || len > dev->config_size - off)
        return false;
    *start = (uint32_t)off;
    return true;
}

void virtio_mmio_read(void *opaque, uint64_t offset, uint8_t *data,
                      uint32_t len)
{
    struct virtio_dev *dev = opaque;
    memset(data, 0, len);
    pthread_mutex_lock(&dev->lock);
    uint32_t start;
    if (offset < VIRTIO_MMIO_CONFIG) {
        /* §4.2.2.2: registers are accessed as aligned 32-bit words. */
        if (len == 4 && offset % 4 == 0) {
            uint32_t v = read_register(dev, offset);
            memcpy(data, &v, 4);
        }
    } else if (config_range(dev, offset, len, &start)) {
        memcpy(data, dev->config + start, len);
    }
    pthread_mutex_unlock(&dev->lock);
}

void virtio_mmio_write(void *opaque, uint64_t offset, const uint8_t *data,
                       uint32_t len)
{
    struct virtio_dev *dev = opaque;
    pthread_mutex_lock(&dev->lock);
    uint32_t start;
    if (offset < VIRTIO_MMIO_CONFIG) {
        if (len == 4 && offset % 4 == 0) {
            uint32_t v;
            memcpy(&v, data, 4);
            write_register(dev, offset, v);
        }
    } else if (dev->ops->config_write &&
               config_range(dev, offset, len, &start)) {
        memcpy(dev->config + start, data, len);
        dev->ops->config_write(dev, start, len);
    }
    pthread_mutex_unlock(&dev->lock);
}

void virtio_mmio_notify(struct virtio_dev *dev, unsigned int q)
{
    pthread_mutex_lock(&dev->lock);
    dev->notifies++;
    if (q < dev->ops->num_queues && virtio_mmio_live(dev) &&
        dev->queues[q].ready) {
        dev->ops->queue_notify(dev, q);
        /* Safety net: a model that saw a broken ring but did not say so
         * still stops here. */
        if (dev->queues[q].vq.broken)
            virtio_mmio_fail(dev, "malformed virtqueue");
    }
    pthread_mutex_unlock(&dev->lock);
}

/* ---- snapshots ---------------------------------------------------------- */

/* Layout of the transport's saved state; bump it when the layout changes
 * (and read the old one, or refuse it). */
#define VIRTIO_MMIO_STATE_VERSION 1

/* InterruptStatus holds only what raise_interrupt sets. */
#define VIRTIO_MMIO_INT_ALL (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)

static void save_queue(struct virtio_dev *dev, unsigned int q,
                       struct state_w *w)
{
    const struct virtio_queue_regs *qr = &dev->queues[q];
    const struct virtq *vq = &qr->vq;
    /* The set-up registers even of a queue not ready: the driver may be
     * between writing them and QueueReady. */
    state_put_u8(w, qr->ready);
    state_put_u16(w, vq->size);
    state_put_u64(w, vq->desc_gpa);
    state_put_u64(w, vq->avail_gpa);
    state_put_u64(w, vq->used_gpa);
    if (!qr->ready)
        return; /* QueueReady starts its rings afresh (virtq_enable) */
    /* Chains popped and not pushed: last_avail runs ahead of used_idx by
     * exactly those, so a model cannot hold more. */
    uint16_t in_flight = (uint16_t)(vq->last_avail - vq->used_idx);
    unsigned int held =
        dev->ops->held_chains ? dev->ops->held_chains(dev, q) : 0;
    if (held > in_flight)
        held = in_flight;
    state_put_u8(w, vq->broken);
    state_put_u16(w, (uint16_t)(vq->last_avail - held));
    state_put_u16(w, vq->used_idx);
    state_put_u16(w, vq->signalled_used);
    state_put_u8(w, vq->signalled_valid);
}

int virtio_mmio_save(struct virtio_dev *dev, struct state_w *w)
{
    pthread_mutex_lock(&dev->lock);
    const struct virtio_dev_ops *ops = dev->ops;
    state_put_u32(w, VIRTIO_MMIO_STATE_VERSION);
    /* Which model and how many queues: a restore onto another is refused. */
    state_put_u32(w, ops->device_id);
    state_put_u16(w, ops->num_queues);
    state_put_u32(w, dev->status);
    state_put_u64(w, dev->device_features);
    state_put_u64(w, dev->driver_features);
    state_put_u32(w, dev->device_features_sel);
    state_put_u32(w, dev->driver_features_sel);
    state_put_u32(w, dev->queue_sel);
    state_put_u32(w, dev->config_generation);
    state_put_u32(w, dev->interrupt_status);
    /* The config space as the driver last saw it. */
    state_put_u32(w, dev->config_size);
    state_put_bytes(w, dev->config, dev->config_size);
    for (unsigned int q = 0; q < ops->num_queues; q++)
        save_queue(dev, q, w);
    /* The model's state behind its length, so that a restore sees a short
     * or long snapshot before the model acts on any of it. */
    struct state_w model;
    state_w_init(&model);
    if (ops->save)
        ops->save(dev, &model);
    if (model.err && !w->err)
        w->err = model.err;
    state_put_u32(w, (uint32_t)model.len);
    state_put_bytes(w, model.buf, model.len);
    state_w_free(&model);
    pthread_mutex_unlock(&dev->lock);
    return w->err;
}

/* A saved bool: 0 or 1, anything else marks r bad. */
static bool get_bool(struct state_r *r)
{
    uint8_t v = state_get_u8(r);
    if (v > 1)
        state_r_fail(r);
    return v == 1;
}

/* One queue's saved state, read and checked before any of it is used. */
struct saved_queue {
    bool ready, broken, signalled_valid;
    uint16_t size, last_avail, used_idx, signalled_used;
    uint64_t desc, avail, used;
};

static void read_queue(const struct virtio_dev *dev, struct state_r *r,
                       uint32_t status, struct saved_queue *s)
{
    s->ready = get_bool(r);
    s->size = state_get_u16(r);
    s->desc = state_get_u64(r);
    s->avail = state_get_u64(r);
    s->used = state_get_u64(r);
    if (!s->ready) {
        /* QueueNum takes any value up to VIRTQ_MAX_SIZE (QueueReady
         * checks it), so a queue not ready may hold one. */
        if (s->size > VIRTQ_MAX_SIZE)
            state_r_fail(r);
        return;
    }
    s->broken = get_bool(r);
    s->last_avail = state_get_u16(r);
    s->used_idx = state_get_u16(r);
    s->signalled_used = state_get_u16(r);
    s->signalled_valid = get_bool(r);
    /* What write_queue_ready lets through; virtq_enable checks the
     * addresses against guest RAM. */
    uint16_t size = s->size;
    if (!(status & VIRTIO_STATUS_FEATURES_OK) || size == 0 ||
        size > dev->ops->queue_max || (size & (size - 1)) != 0 ||
        (uint16_t)(s->last_avail - s->used_idx) > size)
        state_r_fail(r);
}

/* The status bits write_status lets a driver reach. */
static bool status_possible(uint32_t status, uint64_t offered,
                            uint64_t accepted)
{
    if (status > 0xff)
        return false;
    if ((status & VIRTIO_STATUS_FEATURES_OK) &&
        (!(status & VIRTIO_STATUS_DRIVER) || (accepted & ~offered) ||
         !(accepted & (1ULL << VIRTIO_F_VERSION_1))))
        return false;
    if ((status & VIRTIO_STATUS_DRIVER_OK) &&
        !(status & VIRTIO_STATUS_FEATURES_OK))
        return false;
    return true;
}

/* Makes queue q what s says (checked by read_queue). 0 or -EINVAL. */
static int restore_queue(struct virtio_dev *dev, unsigned int q,
                         const struct saved_queue *s)
{
    struct virtio_queue_regs *qr = &dev->queues[q];
    struct virtq *vq = &qr->vq;
    vq->size = s->size;
    vq->desc_gpa = s->desc;
    vq->avail_gpa = s->avail;
    vq->used_gpa = s->used;
    if (!s->ready)
        return 0;
    bool event_idx = virtio_mmio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
    bool indirect = virtio_mmio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
    int ret =
        virtq_enable(vq, dev->mem, dev->ops->queue_max, event_idx, indirect);
    if (ret < 0)
        return ret;
    vq->broken = s->broken;
    vq->last_avail = s->last_avail;
    vq->used_idx = s->used_idx;
    vq->signalled_used = s->signalled_used;
    vq->signalled_valid = s->signalled_valid;
    qr->ready = true;
    return 0;
}

int virtio_mmio_restore(struct virtio_dev *dev, struct state_r *r)
{
    const struct virtio_dev_ops *ops = dev->ops;
    pthread_mutex_lock(&dev->lock);
    bool fresh = dev->status == 0;
    for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
        fresh = fresh && !dev->queues[q].ready;
    if (!fresh) {
        pthread_mutex_unlock(&dev->lock);
        return -EBUSY;
    }
    const uint64_t offer = dev->device_features;
    int ret = -EBADMSG;

    if (state_get_u32(r) != VIRTIO_MMIO_STATE_VERSION ||
        state_get_u32(r) != ops->device_id ||
        state_get_u16(r) != ops->num_queues)
        state_r_fail(r);
    uint32_t status = state_get_u32(r);
    uint64_t offered = state_get_u64(r);
    uint64_t accepted = state_get_u64(r);
    uint32_t device_features_sel = state_get_u32(r);
    uint32_t driver_features_sel = state_get_u32(r);
    /* Any QueueSel is a state the driver can write (an out-of-range one
     * selects nothing and is never an index), as is any features
     * selector. */
    uint32_t queue_sel = state_get_u32(r);
    uint32_t config_generation = state_get_u32(r);
    uint32_t interrupt_status = state_get_u32(r);
    if (state_get_u32(r) != dev->config_size)
        state_r_fail(r);
    uint8_t config[VIRTIO_MMIO_CONFIG_MAX];
    state_get_bytes(r, config, dev->config_size);
    struct saved_queue queues[VIRTIO_MMIO_MAX_QUEUES];
    for (unsigned int q = 0; q < ops->num_queues; q++)
        read_queue(dev, r, status, &queues[q]);
    /* The model's bytes are the rest, to the last. */
    uint32_t model_len = state_get_u32(r);
    if (model_len != r->len - r->off || (model_len && !ops->restore))
        state_r_fail(r);
    /* What the guest was offered: this device may offer more now, never
     * less, and VERSION_1 always. */
    if (r->err || (offered & ~offer) ||
        !(offered & (1ULL << VIRTIO_F_VERSION_1)) ||
        !status_possible(status, offered, accepted) ||
        (interrupt_status & ~(uint32_t)VIRTIO_MMIO_INT_ALL))
        goto fail;

    dev->status = status;
    dev->device_features = offered;
    dev->driver_features = accepted;
    dev->device_features_sel = device_features_sel;
    dev->driver_features_sel = driver_features_sel;
    dev->queue_sel = queue_sel;
    dev->config_generation = config_generation;
    dev->interrupt_status = interrupt_status;
    for (unsigned int q = 0; q < ops->num_queues; q++)
        if (restore_queue(dev, q, &queues[q]) < 0)
            goto fail; /* rings outside guest RAM, misaligned */
    if (ops->restore) {
        ret = ops->restore(dev, r);
        if (ret < 0)
            goto fail;
        ret = -EBADMSG;
    }
    if (state_r_done(r) < 0)
        goto fail;
    if (dev->config_size) /* a model may have no config space (NULL) */
        memcpy(dev->config, config, dev->config_size);

    if (dev->interrupt_status)
        dev->irq(dev->irq_opaque);
    if (virtio_mmio_live(dev)) {
        for (unsigned int q = 0; q < ops->num_queues; q++) {
            if (!dev->queues[q].ready || !virtio_mmio_live(dev))
                continue;
            ops->queue_notify(dev, q);
            if (dev->queues[q].vq.broken)
                virtio_mmio_fail(dev, "malformed virtqueue");
        }
    }
    pthread_mutex_unlock(&dev->lock);
    return 0;

fail:
    /* Back to what virtio_mmio_init left: nothing of the bytes stays. */
    device_reset(dev);
    dev->device_features = offer;
    dev->config_generation = 0;
    pthread_mutex_unlock(&dev->lock);
    return ret;
}
