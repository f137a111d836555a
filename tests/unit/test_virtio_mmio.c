#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/virtio_mmio.h"
#include "tests/unit/mock_virtio_driver.h"
#include "core/guest_mem.h"

#define RAM  (1 * MiB)
#define RING 0x10000ULL
#define BUF  0x80000ULL

#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_DEV_BIT0  (1ULL << 0) /* a device-specific feature we offer */
#define F_DEV_BIT1  (1ULL << 1) /* one we do not */

/* A fake device: queue 0 echoes every chain back as used with its readable
 * length; counts what the transport asks of it. */
struct fake {
    struct guest_mem mem;
    struct virtio_dev dev;
    struct mock_vq m;
    struct virtq_elem elem;
    uint8_t config[8];
    int irqs, activates, resets, notifies, config_writes;
    int activate_ret;
};

static void fake_irq(void *opaque)
{
    ((struct fake *)opaque)->irqs++;
}

static int fake_activate(struct virtio_dev *dev)
{
    struct fake *f = dev->opaque;
    f->activates++;
    return f->activate_ret;
}

static void fake_notify(struct virtio_dev *dev, unsigned int q)
{
    struct fake *f = dev->opaque;
    f->notifies++;
    struct virtq *vq = virtio_mmio_queue(dev, q);
    assert_non_null(vq);
    int ret;
    while ((ret = virtq_pop(vq, &f->elem)) > 0)
        virtq_push(vq, &f->elem, f->elem.in_len);
    if (ret < 0)
        virtio_mmio_fail(dev, "test: bad chain");
    else
        virtio_mmio_used(dev, q);
}

static void fake_reset(struct virtio_dev *dev)
{
    ((struct fake *)dev->opaque)->resets++;
}

static void fake_config_write(struct virtio_dev *dev, uint32_t off,
                              uint32_t len)
{
    (void)off;
    (void)len;
    ((struct fake *)dev->opaque)->config_writes++;
}

static const struct virtio_dev_ops fake_ops = {
    .name = "fake",
    .device_id = 42,
    .num_queues = 2,
    .queue_max = 16,
    .activate = fake_activate,
    .queue_notify = fake_notify,
    .reset = fake_reset,
    .config_write = fake_config_write,
};

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    memcpy(f->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(virtio_mmio_init(&f->dev, &fake_ops, f, &f->mem,
                                      F_DEV_BIT0 | VIRTIO_MMIO_RING_FEATURES,
                                      f->config, sizeof(f->config), fake_irq,
                                      f),
                     0);
    mock_vq_init(&f->m, &f->mem, 8, RING);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    virtio_mmio_free(&f->dev);
    gm_free(&f->mem);
    free(f);
    return 0;
}

#define ST_ALL                                                                 \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |                        \
     VIRTIO_STATUS_FEATURES_OK)

/* Brings the device up with queue 0 from f->m. */
static void go_live(struct fake *f, uint64_t features)
{
    assert_int_equal(mock_negotiate(&f->dev, features), ST_ALL);
    mock_queue_setup(&f->dev, 0, &f->m);
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_STATUS),
                     ST_ALL | VIRTIO_STATUS_DRIVER_OK);
}

static bool needs_reset(struct fake *f)
{
    return mock_rd(&f->dev, VIRTIO_MMIO_STATUS) &
           VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static void identity_registers(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_VERSION), 2);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_DEVICE_ID), 42);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_VENDOR_ID),
                     VIRTIO_MMIO_VENDOR);
    mock_wr(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES),
                     (uint32_t)(F_DEV_BIT0 | VIRTIO_MMIO_RING_FEATURES));
    mock_wr(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES), 1);
    mock_wr(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_DEVICE_FEATURES), 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
}

static void narrow_register_access_ignored(void **state)
{
    struct fake *f = *state;
    uint8_t b[8];
    memset(b, 0xaa, sizeof(b));
    virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, 2);
    assert_int_equal(b[0] | b[1], 0);
    memset(b, 0xaa, sizeof(b));
    virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE + 1, b, 4);
    assert_int_equal(b[0] | b[1] | b[2] | b[3], 0);
    uint8_t one = VIRTIO_STATUS_ACKNOWLEDGE;
    virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS, &one, 1);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_STATUS), 0);
}

static void negotiation_accepts_offered(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1 | F_DEV_BIT0), ST_ALL);
    assert_true(virtio_mmio_has_feature(&f->dev, 0));
    assert_false(virtio_mmio_has_feature(&f->dev, VIRTIO_RING_F_EVENT_IDX));
}

static void features_not_offered_refused(void **state)
{
    struct fake *f = *state;
    uint32_t st = mock_negotiate(&f->dev, F_VERSION_1 | F_DEV_BIT1);
    assert_int_equal(st & VIRTIO_STATUS_FEATURES_OK, 0);
    /* Without VERSION_1 (a legacy driver) too. */
    st = mock_negotiate(&f->dev, F_DEV_BIT0);
    assert_int_equal(st & VIRTIO_STATUS_FEATURES_OK, 0);
    /* A bit beyond 63, through a third select word. */
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 0);
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 3);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, ST_ALL);
    assert_int_equal(
        mock_rd(&f->dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
    /* DRIVER_OK anyway: the device refuses to go live. */
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 3 | VIRTIO_STATUS_DRIVER_OK);
    assert_true(needs_reset(f));
    assert_int_equal(f->activates, 0);
}

static void features_frozen_after_features_ok(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    mock_wr(&f->dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)F_DEV_BIT1);
    assert_false(virtio_mmio_has_feature(&f->dev, 1));
}

static void queue_sel_out_of_range(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    uint32_t sels[] = {2, 3, 1000, 0xffffffff};
    for (size_t i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, sels[i]);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NUM, 8);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NOTIFY, sels[i]);
    }
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
    assert_false(needs_reset(f));
    assert_int_equal(f->notifies, 0);
}

static void bad_queue_sizes_need_reset(void **state)
{
    struct fake *f = *state;
    uint32_t sizes[] = {0, 3, 12, 32, 0x10000, 0xffffffff};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
        struct mock_vq m = f->m;
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, 0);
        mock_queue_setup(&f->dev, 0, &m);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NUM, sizes[i]); /* ignored: ready */
        /* Redo with the bad size from scratch. */
        mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 0);
        assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
        m.size = 8;
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, 0);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)m.desc);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)m.avail);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)m.used);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NUM, sizes[i]);
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
        assert_true(needs_reset(f));
    }
}

static void ring_outside_ram_needs_reset(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    struct mock_vq m = f->m;
    m.used = RAM - 16;
    mock_queue_setup(&f->dev, 0, &m);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
    assert_true(needs_reset(f));
    /* High halves matter: a ring at 4 GiB + desc is not in 1 MiB of RAM. */
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    m = f->m;
    m.desc += 1ULL << 32;
    mock_queue_setup(&f->dev, 0, &m);
    assert_true(needs_reset(f));
}

static void queue_ready_before_features_ok(void **state)
{
    struct fake *f = *state;
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 3);
    mock_queue_setup(&f->dev, 0, &f->m);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
    assert_true(needs_reset(f));
}

static void notify_used_interrupt_ack(void **state)
{
    struct fake *f = *state;
    go_live(f, F_VERSION_1);
    assert_int_equal(f->activates, 1);
    mock_desc(&f->m, 0, BUF, 64, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 0);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_int_equal(f->notifies, 1);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->m, &id, &len), 1);
    assert_int_equal(len, 64);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS),
                     VIRTIO_MMIO_INT_VRING);
    mock_wr(&f->dev, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    /* The ioeventfd path does the same. */
    mock_publish(&f->m, 0);
    virtio_mmio_notify(&f->dev, 0);
    assert_int_equal(mock_used(&f->m, &id, &len), 1);
    assert_int_equal(f->irqs, 2);
    /* A queue that is not ready is never notified. */
    virtio_mmio_notify(&f->dev, 1);
    assert_int_equal(f->notifies, 2);
}

static void notify_before_driver_ok_ignored(void **state)
{
    struct fake *f = *state;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    mock_queue_setup(&f->dev, 0, &f->m);
    virtio_mmio_notify(&f->dev, 0);
    assert_int_equal(f->notifies, 0);
}

static void broken_chain_stalls_until_reset(void **state)
{
    struct fake *f = *state;
    go_live(f, F_VERSION_1);
    int resets = f->resets;
    mock_desc(&f->m, 0, BUF, 16, VRING_DESC_F_NEXT, 0); /* loops */
    mock_publish(&f->m, 0);
    virtio_mmio_notify(&f->dev, 0);
    assert_true(needs_reset(f));
    assert_int_equal(f->resets, resets + 1); /* back-end I/O stopped */
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS),
                     VIRTIO_MMIO_INT_CONFIG);
    assert_int_equal(f->irqs, 1);
    /* Stalled: further notifications do nothing. */
    virtio_mmio_notify(&f->dev, 0);
    assert_int_equal(f->notifies, 1);
    /* The driver resets and starts again; the device works again. */
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_STATUS), 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    mock_vq_init(&f->m, &f->mem, 8, RING);
    go_live(f, F_VERSION_1);
    mock_desc(&f->m, 0, BUF, 16, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 0);
    virtio_mmio_notify(&f->dev, 0);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->m, &id, &len), 1);
}

static void clearing_status_bits_needs_reset(void **state)
{
    struct fake *f = *state;
    go_live(f, F_VERSION_1);
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_true(needs_reset(f));
    /* The driver cannot clear NEEDS_RESET except by a reset. */
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    assert_true(needs_reset(f));
}

static void activate_failure_needs_reset(void **state)
{
    struct fake *f = *state;
    f->activate_ret = -EIO;
    assert_int_equal(mock_negotiate(&f->dev, F_VERSION_1), ST_ALL);
    mock_queue_setup(&f->dev, 0, &f->m);
    mock_wr(&f->dev, VIRTIO_MMIO_STATUS, ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    assert_true(needs_reset(f));
}

static void queue_regs_frozen_while_ready(void **state)
{
    struct fake *f = *state;
    go_live(f, F_VERSION_1);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, 0);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xdead0000);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NUM, 3);
    assert_int_equal(f->dev.queues[0].vq.desc_gpa, f->m.desc);
    assert_int_equal(f->dev.queues[0].vq.size, 8);
    /* QueueReady 0 takes it down. */
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_READY, 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
    virtio_mmio_notify(&f->dev, 0);
    assert_int_equal(f->notifies, 0);
}

static void event_idx_negotiated_reaches_queue(void **state)
{
    struct fake *f = *state;
    go_live(f, F_VERSION_1 | (1ULL << VIRTIO_RING_F_EVENT_IDX));
    assert_true(f->dev.queues[0].vq.event_idx);
    assert_false(f->dev.queues[0].vq.indirect);
}

static void config_space_bounds(void **state)
{
    struct fake *f = *state;
    uint8_t b[8];
    virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 2, b, 2);
    assert_int_equal(b[0], 3);
    assert_int_equal(b[1], 4);
    virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 7, b, 1);
    assert_int_equal(b[0], 8);
    memset(b, 0xaa, sizeof(b));
    virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 6, b, 4); /* straddles */
    assert_int_equal(b[0] | b[1] | b[2] | b[3], 0);
    virtio_mmio_read(&f->dev, 0xff8, b, 8);
    assert_int_equal(b[0], 0);
    virtio_mmio_read(&f->dev, UINT64_MAX - 1, b, 2);
    assert_int_equal(b[0], 0);
    uint8_t w = 0x55;
    virtio_mmio_write(&f->dev, VIRTIO_MMIO_CONFIG + 1, &w, 1);
    assert_int_equal(f->config[1], 0x55);
    assert_int_equal(f->config_writes, 1);
    virtio_mmio_write(&f->dev, VIRTIO_MMIO_CONFIG + 8, &w, 1);
    assert_int_equal(f->config_writes, 1);
}

static void config_generation_changes(void **state)
{
    struct fake *f = *state;
    uint32_t g = mock_rd(&f->dev, VIRTIO_MMIO_CONFIG_GENERATION);
    virtio_mmio_lock(&f->dev);
    virtio_mmio_config_changed(&f->dev);
    virtio_mmio_unlock(&f->dev);
    assert_int_not_equal(mock_rd(&f->dev, VIRTIO_MMIO_CONFIG_GENERATION), g);
    assert_int_equal(f->irqs, 0); /* not live yet: no interrupt */
    go_live(f, F_VERSION_1);
    virtio_mmio_lock(&f->dev);
    virtio_mmio_config_changed(&f->dev);
    virtio_mmio_unlock(&f->dev);
    assert_int_equal(f->irqs, 1);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS),
                     VIRTIO_MMIO_INT_CONFIG);
}

static void init_rejects_bad_ops(void **state)
{
    struct fake *f = *state;
    struct virtio_dev d;
    struct virtio_dev_ops ops = fake_ops;
    ops.queue_max = 12;
    assert_int_equal(
        virtio_mmio_init(&d, &ops, f, &f->mem, 0, NULL, 0, fake_irq, f),
        -EINVAL);
    ops = fake_ops;
    ops.num_queues = VIRTIO_MMIO_MAX_QUEUES + 1;
    assert_int_equal(
        virtio_mmio_init(&d, &ops, f, &f->mem, 0, NULL, 0, fake_irq, f),
        -EINVAL);
    assert_int_equal(virtio_mmio_init(&d, &fake_ops, f, &f->mem, 0, NULL,
                                      0x1000, fake_irq, f),
                     -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(identity_registers),
        T(narrow_register_access_ignored),
        T(negotiation_accepts_offered),
        T(features_not_offered_refused),
        T(features_frozen_after_features_ok),
        T(queue_sel_out_of_range),
        T(bad_queue_sizes_need_reset),
        T(ring_outside_ram_needs_reset),
        T(queue_ready_before_features_ok),
        T(notify_used_interrupt_ack),
        T(notify_before_driver_ok_ignored),
        T(broken_chain_stalls_until_reset),
        T(clearing_status_bits_needs_reset),
        T(activate_failure_needs_reset),
        T(queue_regs_frozen_while_ready),
        T(event_idx_negotiated_reaches_queue),
        T(config_space_bounds),
        T(config_generation_changes),
        T(init_rejects_bad_ops),
    };
    return cmocka_run_group_tests_name("virtio_mmio", tests, NULL, NULL);
}
