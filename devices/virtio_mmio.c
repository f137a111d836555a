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
