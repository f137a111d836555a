#include "tests/unit/mock_virtio_driver.h"

#include <stdlib.h>
#include <string.h>

static void *gpa(struct mock_vq *m, uint64_t addr, uint64_t len)
{
    void *p = gm_ptr(m->mem, addr, len);
    if (!p)
        abort(); /* the mock itself is wrong */
    return p;
}

void mock_vq_init(struct mock_vq *m, struct guest_mem *mem, uint16_t size,
                  uint64_t base)
{
    memset(m, 0, sizeof(*m));
    m->mem = mem;
    m->size = size;
    m->desc = base;
    m->avail = base + ((16ULL * size + 4095) & ~4095ULL);
    m->used = m->avail + ((6ULL + 2ULL * size + 4095) & ~4095ULL);
    memset(gpa(m, m->desc, 16ULL * size), 0, 16ULL * size);
    memset(gpa(m, m->avail, 6ULL + 2ULL * size), 0, 6ULL + 2ULL * size);
    memset(gpa(m, m->used, 6ULL + 8ULL * size), 0, 6ULL + 8ULL * size);
}

void mock_desc(struct mock_vq *m, uint16_t i, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next)
{
    uint8_t *d = gpa(m, m->desc + 16ULL * i, 16);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

void mock_publish(struct mock_vq *m, uint16_t head)
{
    uint16_t *ring = gpa(m, m->avail + 4, 2ULL * m->size);
    ring[m->avail_idx % m->size] = head;
    m->avail_idx++;
    mock_set_avail_idx(m, m->avail_idx);
}

void mock_set_avail_idx(struct mock_vq *m, uint16_t idx)
{
    uint16_t *p = gpa(m, m->avail + 2, 2);
    __atomic_store_n(p, idx, __ATOMIC_RELEASE);
}

void mock_set_avail_flags(struct mock_vq *m, uint16_t flags)
{
    *(uint16_t *)gpa(m, m->avail, 2) = flags;
}

void mock_set_used_event(struct mock_vq *m, uint16_t event)
{
    *(uint16_t *)gpa(m, m->avail + 4 + 2ULL * m->size, 2) = event;
}

int mock_used(struct mock_vq *m, uint32_t *id, uint32_t *len)
{
    uint16_t idx =
        __atomic_load_n((uint16_t *)gpa(m, m->used + 2, 2), __ATOMIC_ACQUIRE);
    if (idx == m->last_used)
        return 0;
    uint32_t *e = gpa(m, m->used + 4 + 8ULL * (m->last_used % m->size), 8);
    *id = e[0];
    *len = e[1];
    m->last_used++;
    return 1;
}

uint16_t mock_avail_event(struct mock_vq *m)
{
    return *(uint16_t *)gpa(m, m->used + 4 + 8ULL * m->size, 2);
}

uint32_t mock_rd(struct virtio_dev *dev, uint64_t offset)
{
    uint32_t v;
    virtio_mmio_read(dev, offset, (uint8_t *)&v, 4);
    return v;
}

void mock_wr(struct virtio_dev *dev, uint64_t offset, uint32_t value)
{
    virtio_mmio_write(dev, offset, (const uint8_t *)&value, 4);
}

uint32_t mock_negotiate(struct virtio_dev *dev, uint64_t features)
{
    mock_wr(dev, VIRTIO_MMIO_STATUS, 0);
    mock_wr(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    mock_wr(dev, VIRTIO_MMIO_STATUS,
            VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    mock_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    mock_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
    mock_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    mock_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    mock_wr(dev, VIRTIO_MMIO_STATUS,
            VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                VIRTIO_STATUS_FEATURES_OK);
    return mock_rd(dev, VIRTIO_MMIO_STATUS);
}

void mock_queue_setup(struct virtio_dev *dev, unsigned int q,
                      const struct mock_vq *m)
{
    mock_wr(dev, VIRTIO_MMIO_QUEUE_SEL, q);
    mock_wr(dev, VIRTIO_MMIO_QUEUE_NUM, m->size);
    mock_wr(dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)m->desc);
    mock_wr(dev, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(m->desc >> 32));
    mock_wr(dev, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)m->avail);
    mock_wr(dev, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(m->avail >> 32));
    mock_wr(dev, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)m->used);
    mock_wr(dev, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(m->used >> 32));
    mock_wr(dev, VIRTIO_MMIO_QUEUE_READY, 1);
}
