#include "tests/fuzz/virtio_driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "tests/fuzz/check.h"

#define QUEUE_SPAN   0x2000ULL /* each queue's rings */
#define AVAIL_OFFSET 0x1000ULL
#define USED_OFFSET  0x1400ULL /* room for the used ring of 256 entries */
#define MAX_CHAIN    4         /* descriptors VD_CHAIN puts in one chain */
#define MAX_BUF      4096      /* bytes of one VD_CHAIN buffer */

struct guest_mem *virtio_driver_ram(void)
{
    static struct guest_mem mem;
    if (mem.nr_regions == 0 && gm_init(&mem, VIRTIO_DRIVER_RAM) < 0)
        return NULL;
    memset(gm_ptr(&mem, 0, VIRTIO_DRIVER_RAM), 0, VIRTIO_DRIVER_RAM);
    return &mem;
}

void virtio_driver_init(struct virtio_driver *d, struct virtio_dev *dev,
                        struct guest_mem *mem)
{
    memset(d, 0, sizeof(*d));
    d->dev = dev;
    d->mem = mem;
    d->buf_next = VIRTIO_DRIVER_BUF;
}

static uint32_t rd(struct virtio_driver *d, uint64_t offset)
{
    uint32_t v;
    virtio_mmio_read(d->dev, offset, (uint8_t *)&v, 4);
    return v;
}

static void wr(struct virtio_driver *d, uint64_t offset, uint32_t value)
{
    virtio_mmio_write(d->dev, offset, (const uint8_t *)&value, 4);
    if (offset == VIRTIO_MMIO_STATUS && value == 0)
        d->saw_need_reset = false; /* a reset is what clears it */
}

static void *ram(struct virtio_driver *d, uint64_t gpa, uint64_t len)
{
    void *p = gm_ptr(d->mem, gpa, len);
    check_that(p != NULL, "the harness's own guest address is outside RAM");
    return p;
}

/* A queue the harness set up, or NULL. */
static struct virtio_driver_queue *queue(struct virtio_driver *d, uint8_t q)
{
    struct virtio_driver_queue *vq = &d->q[q % VIRTIO_MMIO_MAX_QUEUES];
    return vq->size ? vq : NULL;
}

static void write_desc(struct virtio_driver *d, uint64_t gpa, uint64_t addr,
                       uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *p = ram(d, gpa, 16);
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* Room for len bytes in the buffer area, aligned to 16, starting inside
 * RAM even when len is 0. */
static uint64_t buffer(struct virtio_driver *d, uint32_t len)
{
    if (d->buf_next + len >= VIRTIO_DRIVER_RAM)
        d->buf_next = VIRTIO_DRIVER_BUF;
    uint64_t gpa = d->buf_next;
    d->buf_next = (uint32_t)((d->buf_next + len + 15) & ~15u);
    return gpa;
}

static void publish(struct virtio_driver *d, struct virtio_driver_queue *vq,
                    uint16_t head)
{
    uint16_t *ring = ram(d, vq->avail + 4, 2ULL * vq->size);
    ring[vq->avail_idx % vq->size] = head;
    vq->avail_idx++;
    /* The device reads the ring entry after the index (virtq_pop's
     * acquire): store the index last, with release. */
    __atomic_store_n((uint16_t *)ram(d, vq->avail + 2, 2), vq->avail_idx,
                     __ATOMIC_RELEASE);
}

static void op_write_reg(struct virtio_driver *d, struct cursor *in)
{
    uint8_t reg = cursor_u8(in);
    uint32_t value = cursor_u32(in);
    uint64_t offset = (reg & 0x3fu) * 4u;
    if (reg >> 6) /* a 1-3 byte access the transport must ignore */
        virtio_mmio_write(d->dev, offset, (const uint8_t *)&value, reg >> 6);
    else
        wr(d, offset, value);
}

static void op_read(struct virtio_driver *d, struct cursor *in)
{
    static const uint32_t lens[4] = {1, 2, 4, 8};
    uint64_t offset = cursor_u16(in) % 0x1000;
    uint32_t len = lens[cursor_u8(in) & 3];
    uint8_t buf[8];
    memset(buf, 0xa5, sizeof(buf));
    if (offset < VIRTIO_MMIO_CONFIG)
        offset &= ~3ULL;
    virtio_mmio_read(d->dev, offset, buf, len);
    uint64_t config_end = VIRTIO_MMIO_CONFIG + d->dev->config_size;
    bool zero =
        (offset < VIRTIO_MMIO_CONFIG && len != 4) || offset + len > config_end;
    for (uint32_t i = 0; zero && i < len; i++)
        check_that(buf[i] == 0, "a refused MMIO read left data unzeroed");
    for (uint32_t i = len; i < sizeof(buf); i++)
        check_that(buf[i] == 0xa5, "an MMIO read wrote past its length");
}

/* The Linux start-up sequence (§3.1.1) up to FEATURES_OK, accepting the
 * offered features under the input's mask. */
static void op_negotiate(struct virtio_driver *d, struct cursor *in)
{
    uint64_t mask = cursor_u64(in);
    wr(d, VIRTIO_MMIO_STATUS, 0);
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t offered = 0;
    for (uint32_t sel = 0; sel < 2; sel++) {
        wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
        offered |= (uint64_t)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
    }
    uint64_t want = offered & mask;
    for (uint32_t sel = 0; sel < 2; sel++) {
        wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(want >> (32 * sel)));
    }
    wr(d, VIRTIO_MMIO_STATUS,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
           VIRTIO_STATUS_FEATURES_OK);
    uint32_t status = rd(d, VIRTIO_MMIO_STATUS);
    bool ok = (want & (1ULL << VIRTIO_F_VERSION_1)) != 0;
    check_that(!(status & VIRTIO_STATUS_FEATURES_OK) == !ok,
               "FEATURES_OK does not follow whether VERSION_1 was taken");
}

static void op_queue_setup(struct virtio_driver *d, struct cursor *in)
{
    uint8_t q = cursor_u8(in), s = cursor_u8(in);
    /* One queue past the device's, to see it refused. */
    unsigned int nq = d->dev->ops->num_queues;
    q %= nq + 1;
    uint16_t size = s & 0x80 ? s & 0x7f : (uint16_t)(1u << (s % 9));
    struct virtio_driver_queue scratch, *vq = &scratch;
    if (q < nq)
        vq = &d->q[q];
    uint64_t base = (q % VIRTIO_MMIO_MAX_QUEUES) * QUEUE_SPAN;
    *vq = (struct virtio_driver_queue){
        .size = size,
        .desc = base,
        .avail = base + AVAIL_OFFSET,
        .used = base + USED_OFFSET,
    };
    /* §2.7.13: the rings start zeroed. */
    if (q < nq)
        memset(ram(d, base, QUEUE_SPAN), 0, QUEUE_SPAN);
    wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
    wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)vq->desc);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)vq->avail);
    wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)vq->used);
    wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
    if (q >= nq) {
        check_that(rd(d, VIRTIO_MMIO_QUEUE_READY) == 0,
                   "a queue past the device's reads ready");
        check_that(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX) == 0,
                   "a queue past the device's has a QueueNumMax");
    }
}

/* One chain of 1 to MAX_CHAIN descriptors from the buffer area, direct or
 * in an indirect table, published. shape: bits 0-1 descriptors - 1, bit 2
 * indirect, bits 3-6 which descriptors are device-writable. */
static void op_chain(struct virtio_driver *d, struct cursor *in)
{
    struct virtio_driver_queue *vq = queue(d, cursor_u8(in));
    uint8_t shape = cursor_u8(in);
    unsigned int n = (shape & 3u) + 1;
    bool indirect = shape & 4;
    uint64_t table = indirect ? buffer(d, 16 * MAX_CHAIN) : 0;
    uint16_t head = vq ? vq->next_desc % vq->size : 0;
    for (unsigned int i = 0; i < n; i++) {
        uint32_t len = cursor_u16(in) % MAX_BUF;
        bool writable = shape & (8u << i);
        uint64_t gpa = buffer(d, len);
        if (!writable) {
            const uint8_t *data;
            size_t got = cursor_bytes(in, len, &data);
            memcpy(ram(d, gpa, len), data, got);
        }
        if (!vq)
            continue;
        uint16_t flags = (writable ? VRING_DESC_F_WRITE : 0) |
                         (i + 1 < n ? VRING_DESC_F_NEXT : 0);
        if (indirect) {
            write_desc(d, table + 16 * i, gpa, len, flags, (uint16_t)(i + 1));
        } else {
            uint16_t idx = (uint16_t)((head + i) % vq->size);
            uint16_t next = (uint16_t)((head + i + 1) % vq->size);
            write_desc(d, vq->desc + 16ULL * idx, gpa, len, flags, next);
        }
    }
    if (!vq)
        return;
    if (indirect)
        write_desc(d, vq->desc + 16ULL * head, table, 16 * n,
                   VRING_DESC_F_INDIRECT, 0);
    vq->next_desc = (uint16_t)(head + (indirect ? 1 : n));
    publish(d, vq, head);
}

static void op_desc(struct virtio_driver *d, struct cursor *in)
{
    struct virtio_driver_queue *vq = queue(d, cursor_u8(in));
    uint16_t idx = cursor_u16(in);
    uint64_t addr = cursor_u16(in);
    uint32_t len = cursor_u16(in);
    uint8_t flags = cursor_u8(in);
    uint16_t next = cursor_u16(in);
    if (!vq)
        return;
    /* Bit 3 of flags: an address past the end of RAM. */
    if (flags & 8)
        addr += VIRTIO_DRIVER_RAM - 0x8000;
    write_desc(d, vq->desc + 16ULL * (idx % vq->size), addr, len, flags & 7,
               next);
}

static void op_publish(struct virtio_driver *d, struct cursor *in)
{
    struct virtio_driver_queue *vq = queue(d, cursor_u8(in));
    uint16_t head = cursor_u16(in);
    if (!vq)
        return;
    /* Mostly a descriptor index, sometimes anything. */
    if (!(head & 0x8000))
        head %= vq->size;
    publish(d, vq, head);
}

static void op_poke(struct virtio_driver *d, struct cursor *in)
{
    uint16_t gpa = cursor_u16(in);
    const uint8_t *data;
    size_t n = cursor_bytes(in, cursor_u8(in), &data);
    if (gpa + n > VIRTIO_DRIVER_RAM)
        n = VIRTIO_DRIVER_RAM - gpa;
    memcpy(ram(d, gpa, n), data, n);
}

static void op_avail_ctl(struct virtio_driver *d, struct cursor *in)
{
    struct virtio_driver_queue *vq = queue(d, cursor_u8(in));
    uint16_t flags = cursor_u16(in), event = cursor_u16(in);
    if (!vq)
        return;
    *(uint16_t *)ram(d, vq->avail, 2) = flags;
    *(uint16_t *)ram(d, vq->avail + 4 + 2ULL * vq->size, 2) = event;
}

static void op_config(struct virtio_driver *d, struct cursor *in)
{
    static const uint32_t lens[4] = {1, 2, 4, 8};
    uint8_t offset = cursor_u8(in);
    uint32_t len = lens[cursor_u8(in) & 3];
    uint64_t value = cursor_u64(in);
    virtio_mmio_write(d->dev, VIRTIO_MMIO_CONFIG + offset,
                      (const uint8_t *)&value, len);
}

void virtio_driver_step(struct virtio_driver *d, uint8_t op, struct cursor *in)
{
    switch (op % 16) {
    case VD_WRITE_REG: op_write_reg(d, in); break;
    case VD_READ: op_read(d, in); break;
    case VD_NEGOTIATE: op_negotiate(d, in); break;
    case VD_QUEUE_SETUP: op_queue_setup(d, in); break;
    case VD_DRIVER_OK:
        wr(d, VIRTIO_MMIO_STATUS,
           rd(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
        break;
    case VD_CHAIN: op_chain(d, in); break;
    case VD_DESC: op_desc(d, in); break;
    case VD_PUBLISH: op_publish(d, in); break;
    case VD_NOTIFY: wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, cursor_u8(in)); break;
    case VD_POKE: op_poke(d, in); break;
    case VD_AVAIL_CTL: op_avail_ctl(d, in); break;
    case VD_CONFIG: op_config(d, in); break;
    case VD_INT_ACK:
        wr(d, VIRTIO_MMIO_INTERRUPT_ACK, rd(d, VIRTIO_MMIO_INTERRUPT_STATUS));
        break;
    case VD_RESET:
        wr(d, VIRTIO_MMIO_STATUS, 0);
        check_that(rd(d, VIRTIO_MMIO_STATUS) == 0,
                   "status is not 0 after a reset");
        break;
    default: break;
    }
    virtio_driver_check(d);
}

void virtio_driver_check(struct virtio_driver *d)
{
    const struct virtio_dev *dev = d->dev;
    check_that(!(dev->interrupt_status &
                 ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)),
               "InterruptStatus has undefined bits");
    if (dev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        d->saw_need_reset = true;
    else
        check_that(!d->saw_need_reset,
                   "DEVICE_NEEDS_RESET went away without a reset");
    for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
        const struct virtio_queue_regs *qr = &dev->queues[q];
        if (q >= dev->ops->num_queues || dev->status == 0) {
            check_that(!qr->ready, "a queue past the device's, or of a "
                                   "reset device, is ready");
            continue;
        }
        if (!qr->ready || !qr->vq.ready)
            continue;
        /* Chains handed out and not yet used: at most the ring. */
        uint16_t held = (uint16_t)(qr->vq.last_avail - qr->vq.used_idx);
        check_that(held <= qr->vq.size, "more chains used than popped");
    }
}
