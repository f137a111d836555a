/* libFuzzer target: a hostile driver's rings and register writes.
 *
 * Input byte 0 picks the mode:
 *   even: queue processing. Byte 1: queue size log2 (mod 11), byte 2:
 *         feature flags (EVENT_IDX, INDIRECT), bytes 3-4: starting
 *         last_avail; the rest is copied over the fake guest RAM, which
 *         holds the descriptor table (0x0), avail ring (0x100), used ring
 *         (0x200) and buffers. Every chain is popped, read, written and pushed.
 *   odd:  register file. The rest is a sequence of (offset u16, value u32)
 *         32-bit MMIO writes (and reads) to a virtio-mmio device whose
 *         queue_notify echoes chains as the mode above does.
 * Nothing may crash, hang, or touch memory outside the fake RAM. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio_mmio.h"
#include "devices/virtq.h"
#include "core/guest_mem.h"

#define RAM_SIZE (64 * 1024)

static struct guest_mem mem;
static struct virtq_elem elem;
static uint8_t scratch[RAM_SIZE];

static void process(struct virtq *vq)
{
    /* More pops than any legal ring can hold: a broken driver must be
     * stopped by the queue, not by this bound. */
    for (int i = 0; i < 4 * VIRTQ_MAX_SIZE; i++) {
        int ret = virtq_pop(vq, &elem);
        if (ret <= 0)
            break;
        uint64_t got = virtq_elem_read(&elem, 0, scratch, sizeof(scratch));
        uint64_t put = virtq_elem_write(&elem, 1, scratch, got);
        if (i % 3 == 0) {
            virtq_unpop(vq);
            if (virtq_pop(vq, &elem) <= 0)
                break;
        }
        virtq_push(vq, &elem, put + (uint64_t)i);
        (void)virtq_need_interrupt(vq);
    }
    (void)virtq_has_avail(vq);
}

static void fake_irq(void *opaque)
{
    (void)opaque;
}

static void fake_notify(struct virtio_dev *dev, unsigned int q)
{
    struct virtq *vq = virtio_mmio_queue(dev, q);
    if (vq)
        process(vq);
    if (vq && vq->broken)
        virtio_mmio_fail(dev, "fuzz");
    else
        virtio_mmio_used(dev, q);
}

static const struct virtio_dev_ops fake_ops = {
    .name = "fuzz",
    .device_id = 3,
    .num_queues = 2,
    .queue_max = 256,
    .queue_notify = fake_notify,
};

static void fuzz_rings(const uint8_t *data, size_t size)
{
    if (size < 5)
        return;
    struct virtq vq;
    virtq_reset(&vq);
    vq.size = (uint16_t)(1u << (data[1] % 11));
    bool event_idx = data[2] & 1, indirect = data[2] & 2;
    uint16_t start = (uint16_t)(data[3] | data[4] << 8);
    /* Rings at fixed addresses, close together so small inputs reach them;
     * large queues overlap their rings, which a hostile driver may do. */
    vq.desc_gpa = 0x000;
    vq.avail_gpa = 0x100;
    vq.used_gpa = 0x200;
    if (data[2] & 4)
        vq.used_gpa = RAM_SIZE - 8; /* rings past the end: refused */
    if (virtq_enable(&vq, &mem, VIRTQ_MAX_SIZE, event_idx, indirect) < 0)
        return;
    vq.last_avail = start;
    vq.used_idx = start;
    process(&vq);
}

static void fuzz_registers(const uint8_t *data, size_t size)
{
    static struct virtio_dev dev;
    static uint8_t config[16];
    if (virtio_mmio_init(&dev, &fake_ops, NULL, &mem,
                         VIRTIO_MMIO_RING_FEATURES | 1, config, sizeof(config),
                         fake_irq, NULL) < 0)
        return;
    for (size_t i = 1; i + 6 <= size; i += 6) {
        uint16_t off;
        uint32_t val;
        memcpy(&off, data + i, 2);
        memcpy(&val, data + i + 2, 4);
        uint8_t buf[8];
        off %= 0x1000;
        if (off & 0x8000)
            virtio_mmio_read(&dev, off & 0xfff, buf, 4);
        else if (off >= 0x100)
            virtio_mmio_write(&dev, off, (uint8_t *)&val, 1 + (val & 3));
        else
            virtio_mmio_write(&dev, off & ~3u, (uint8_t *)&val, 4);
    }
    virtio_mmio_free(&dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (mem.nr_regions == 0 && gm_init(&mem, RAM_SIZE) < 0)
        return 0;
    if (size < 1)
        return 0;
    uint8_t *ram = gm_ptr(&mem, 0, RAM_SIZE);
    size_t n = size - 1 < RAM_SIZE ? size - 1 : RAM_SIZE;
    memset(ram, 0, RAM_SIZE);
    if (data[0] & 1) {
        memcpy(ram, data + 1, n);
        fuzz_registers(data, size);
    } else {
        if (size > 5)
            memcpy(ram, data + 5, size - 5 < RAM_SIZE ? size - 5 : RAM_SIZE);
        fuzz_rings(data, size);
    }
    return 0;
}
