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
    /* Snapshots: with hold set, queue 0 keeps the chain it pops (as a
     * model waiting for its back-end does) until hold is cleared. */
    bool hold;
    int held;
    uint32_t model_value; /* the model's own saved state */
    int restores, restore_ret;
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
    if (f->held && !f->hold) {
        virtq_push(vq, &f->elem, f->elem.in_len);
        f->held = 0;
    }
    int ret = 0;
    while (!f->held && (ret = virtq_pop(vq, &f->elem)) > 0) {
        if (f->hold)
            f->held = 1;
        else
            virtq_push(vq, &f->elem, f->elem.in_len);
    }
    if (ret < 0)
        virtio_mmio_fail(dev, "test: bad chain");
    else
        virtio_mmio_used(dev, q);
}

static void fake_reset(struct virtio_dev *dev)
{
    struct fake *f = dev->opaque;
    f->resets++;
    f->held = 0;
    f->model_value = 0; /* a reset device forgets its state */
}

static void fake_config_write(struct virtio_dev *dev, uint32_t off,
                              uint32_t len)
{
    (void)off;
    (void)len;
    ((struct fake *)dev->opaque)->config_writes++;
}

static unsigned int fake_held_chains(struct virtio_dev *dev, unsigned int q)
{
    struct fake *f = dev->opaque;
    return q == 0 ? (unsigned int)f->held : 0;
}

#define FAKE_STATE_VERSION 1
#define FAKE_BAD_VALUE     0xbadbad /* a value the model refuses */

static void fake_save(struct virtio_dev *dev, struct state_w *w)
{
    struct fake *f = dev->opaque;
    state_put_u32(w, FAKE_STATE_VERSION);
    state_put_u32(w, f->model_value);
}

static int fake_restore(struct virtio_dev *dev, struct state_r *r)
{
    struct fake *f = dev->opaque;
    f->restores++;
    if (state_get_u32(r) != FAKE_STATE_VERSION)
        state_r_fail(r);
    uint32_t v = state_get_u32(r);
    if (v == FAKE_BAD_VALUE)
        state_r_fail(r);
    if (state_r_done(r) < 0)
        return -EBADMSG;
    if (f->restore_ret)
        return f->restore_ret;
    f->model_value = v;
    return 0;
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
    .held_chains = fake_held_chains,
    .save = fake_save,
    .restore = fake_restore,
};

#define FAKE_OFFER (F_DEV_BIT0 | VIRTIO_MMIO_RING_FEATURES)

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    memcpy(f->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(virtio_mmio_init(&f->dev, &fake_ops, f, &f->mem,
                                      FAKE_OFFER, f->config, sizeof(f->config),
                                      fake_irq, f),
                     0);
    mock_vq_init(&f->m, &f->mem, 8, RING);
    return f;
}

static void fake_delete(struct fake *f)
{
    virtio_mmio_free(&f->dev);
    gm_free(&f->mem);
    free(f);
}

static int setup(void **state)
{
    *state = fake_new();
    return 0;
}

static int teardown(void **state)
{
    fake_delete(*state);
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

/* ---- snapshots ---------------------------------------------------------- */

#define F_EVENT_IDX (1ULL << VIRTIO_RING_F_EVENT_IDX)
#define RING1       (RING + 0x8000) /* queue 1's rings */

/* A device restored from a snapshot of a: guest RAM as the snapshot's
 * memory file holds it, the device fresh from virtio_mmio_init, and the
 * driver's view of queue 0 carried over. */
static struct fake *fake_like(const struct fake *a)
{
    struct fake *b = fake_new();
    memcpy(b->mem.regions[0].hva, a->mem.regions[0].hva,
           a->mem.regions[0].size);
    b->m = a->m;
    b->m.mem = &b->mem;
    return b;
}

static void save(struct fake *f, struct state_w *w)
{
    state_w_init(w);
    assert_int_equal(virtio_mmio_save(&f->dev, w), 0);
}

static int restore(struct fake *f, const uint8_t *p, size_t len)
{
    struct state_r r;
    state_r_init(&r, p, len);
    return virtio_mmio_restore(&f->dev, &r);
}

/* f reads as virtio_mmio_init left it (a refused restore leaves nothing
 * behind), and did nothing the guest could see. */
static void assert_fresh(struct fake *f)
{
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_STATUS), 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_CONFIG_GENERATION), 0);
    assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 0);
    assert_int_equal(f->dev.device_features,
                     FAKE_OFFER | (1ULL << VIRTIO_F_VERSION_1));
    assert_int_equal(f->dev.driver_features, 0);
    assert_int_equal(f->dev.queue_sel, 0);
    for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
        assert_false(f->dev.queues[q].ready);
        assert_int_equal(f->dev.queues[q].vq.size, 0);
    }
    assert_memory_equal(f->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(f->activates, 0);
    assert_int_equal(f->irqs, 0);
    assert_int_equal(f->model_value, 0);
}

/* The used rings of queue 0 in a's and b's RAM are the same bytes. */
static void assert_same_used(struct fake *a, struct fake *b)
{
    uint64_t len = 6 + 8ULL * a->m.size;
    assert_memory_equal(gm_ptr(&a->mem, a->m.used, len),
                        gm_ptr(&b->mem, b->m.used, len), len);
}

static void post(struct fake *f, uint16_t i)
{
    mock_desc(&f->m, i, BUF + 0x100ULL * i, 64, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, i);
}

/* Queue 1 set up but not made ready: the driver is between its writes. */
static void queue1_half_set_up(struct fake *f)
{
    struct mock_vq m1;
    mock_vq_init(&m1, &f->mem, 4, RING1);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_SEL, 1);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_NUM, 4);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)m1.desc);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)m1.avail);
    mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)m1.used);
}

static void snapshot_restores_a_live_device(void **state)
{
    struct fake *a = *state;
    go_live(a, F_VERSION_1 | F_DEV_BIT0 | F_EVENT_IDX);
    post(a, 0);
    post(a, 1);
    virtio_mmio_notify(&a->dev, 0); /* both used, the interrupt raised */
    assert_int_equal(a->irqs, 1);
    /* The driver wants the next interrupt once used passes index 3. */
    mock_set_used_event(&a->m, 3);
    post(a, 2);
    virtio_mmio_notify(&a->dev, 0); /* used, no interrupt asked for */
    assert_int_equal(a->irqs, 1);
    post(a, 3); /* published; the kick is still in the ioeventfd */
    queue1_half_set_up(a);
    mock_wr(&a->dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    mock_wr(&a->dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 7);
    virtio_mmio_lock(&a->dev);
    virtio_mmio_config_changed(&a->dev);
    virtio_mmio_unlock(&a->dev);
    assert_int_equal(a->irqs, 2);
    a->model_value = 1234;
    struct state_w w;
    save(a, &w);

    struct fake *b = fake_like(a);
    assert_int_equal(restore(b, w.buf, w.len), 0);
    /* Live again without activate, the model's own state back. */
    assert_int_equal(b->activates, 0);
    assert_int_equal(b->restores, 1);
    assert_int_equal(b->model_value, 1234);
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_STATUS),
                     ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_CONFIG_GENERATION),
                     mock_rd(&a->dev, VIRTIO_MMIO_CONFIG_GENERATION));
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_DEVICE_FEATURES),
                     mock_rd(&a->dev, VIRTIO_MMIO_DEVICE_FEATURES));
    assert_int_equal(b->dev.driver_features_sel, 7);
    assert_int_equal(b->dev.driver_features, a->dev.driver_features);
    /* QueueSel still selects queue 1, not ready, set up as written. */
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_QUEUE_READY), 0);
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
    /* The unacknowledged interrupt is still pending and raised again; the
     * lost kick was made up for: chain 3 used, and (used_event 3) an
     * interrupt. The original does the same once its kick arrives. */
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_INTERRUPT_STATUS),
                     VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
    assert_int_equal(b->irqs, 2);
    virtio_mmio_notify(&a->dev, 0);
    assert_int_equal(a->irqs, 3);
    assert_same_used(a, b);
    assert_int_equal(b->dev.queues[0].vq.signalled_used,
                     a->dev.queues[0].vq.signalled_used);

    /* From here both behave the same: queue 1 becomes ready with the
     * addresses written before the snapshot, queue 0 goes on. */
    struct fake *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct fake *f = both[i];
        int irqs = f->irqs;
        mock_wr(&f->dev, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_QUEUE_READY), 1);
        assert_false(needs_reset(f));
        mock_wr(&f->dev, VIRTIO_MMIO_INTERRUPT_ACK, 3);
        assert_int_equal(mock_rd(&f->dev, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        post(f, 4);
        virtio_mmio_notify(&f->dev, 0);
        assert_int_equal(f->irqs, irqs); /* used_event 3 already passed */
        mock_set_used_event(&f->m, 5);
        post(f, 5);
        post(f, 6);
        virtio_mmio_notify(&f->dev, 0);
        assert_int_equal(f->irqs, irqs + 1);
    }
    assert_same_used(a, b);
    uint32_t id, len;
    for (uint32_t i = 0; i < 7; i++) {
        assert_int_equal(mock_used(&b->m, &id, &len), 1);
        assert_int_equal(id, i);
        assert_int_equal(len, 64);
    }
    assert_int_equal(mock_used(&b->m, &id, &len), 0);
    fake_delete(b);
    state_w_free(&w);
}

static void snapshot_before_driver_ok_activates_later(void **state)
{
    struct fake *a = *state;
    assert_int_equal(mock_negotiate(&a->dev, F_VERSION_1), ST_ALL);
    mock_queue_setup(&a->dev, 0, &a->m);
    post(a, 0);
    struct state_w w;
    save(a, &w);
    struct fake *b = fake_like(a);
    assert_int_equal(restore(b, w.buf, w.len), 0);
    assert_int_equal(b->notifies, 0); /* not live: nothing processed */
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_STATUS), ST_ALL);
    mock_wr(&b->dev, VIRTIO_MMIO_STATUS, ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(b->activates, 1);
    virtio_mmio_notify(&b->dev, 0);
    uint32_t id, len;
    assert_int_equal(mock_used(&b->m, &id, &len), 1);
    fake_delete(b);
    state_w_free(&w);
}

static void snapshot_with_a_held_chain_pops_it_again(void **state)
{
    struct fake *a = *state;
    go_live(a, F_VERSION_1 | F_EVENT_IDX);
    post(a, 0);
    post(a, 1);
    virtio_mmio_notify(&a->dev, 0);
    a->hold = true;
    post(a, 2);
    virtio_mmio_notify(&a->dev, 0); /* chain 2 popped and kept */
    assert_int_equal(a->held, 1);
    assert_int_equal(a->dev.queues[0].vq.last_avail, 3);
    struct state_w w;
    save(a, &w);

    /* The saved ring says chain 2 was never popped: a device restored
     * with its model still waiting holds it again, and saves the same. */
    struct fake *b = fake_like(a);
    b->hold = true;
    assert_int_equal(restore(b, w.buf, w.len), 0);
    assert_int_equal(b->held, 1);
    assert_int_equal(b->elem.head, 2);
    struct state_w w2;
    save(b, &w2);
    assert_int_equal(w2.len, w.len);
    assert_memory_equal(w2.buf, w.buf, w.len);
    state_w_free(&w2);
    fake_delete(b);

    /* A restored model that can go on uses it exactly once, as the
     * original does once its back-end lets it. */
    b = fake_like(a);
    assert_int_equal(restore(b, w.buf, w.len), 0);
    assert_int_equal(b->held, 0);
    a->hold = false;
    virtio_mmio_notify(&a->dev, 0);
    assert_same_used(a, b);
    uint32_t id, len;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(mock_used(&b->m, &id, &len), 1);
        assert_int_equal(id, i);
    }
    assert_int_equal(mock_used(&b->m, &id, &len), 0);
    fake_delete(b);
    state_w_free(&w);
}

static void snapshot_of_a_device_needing_reset(void **state)
{
    struct fake *a = *state;
    go_live(a, F_VERSION_1);
    mock_desc(&a->m, 0, BUF, 16, VRING_DESC_F_NEXT, 0); /* loops */
    mock_publish(&a->m, 0);
    virtio_mmio_notify(&a->dev, 0);
    assert_true(needs_reset(a));
    struct state_w w;
    save(a, &w);
    struct fake *b = fake_like(a);
    assert_int_equal(restore(b, w.buf, w.len), 0);
    assert_true(needs_reset(b));
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_INTERRUPT_STATUS),
                     VIRTIO_MMIO_INT_CONFIG);
    virtio_mmio_notify(&b->dev, 0);
    assert_int_equal(b->notifies, 0); /* still stalled */
    /* The driver resets it and starts again. */
    mock_wr(&b->dev, VIRTIO_MMIO_STATUS, 0);
    mock_vq_init(&b->m, &b->mem, 8, RING);
    go_live(b, F_VERSION_1);
    post(b, 0);
    virtio_mmio_notify(&b->dev, 0);
    uint32_t id, len;
    assert_int_equal(mock_used(&b->m, &id, &len), 1);
    fake_delete(b);
    state_w_free(&w);
}

static void snapshot_of_a_device_without_config_space(void **state)
{
    struct fake *f = *state;
    struct virtio_dev a, b;
    assert_int_equal(
        virtio_mmio_init(&a, &fake_ops, f, &f->mem, 0, NULL, 0, fake_irq, f),
        0);
    assert_int_equal(mock_negotiate(&a, F_VERSION_1), ST_ALL);
    struct state_w w;
    state_w_init(&w);
    assert_int_equal(virtio_mmio_save(&a, &w), 0);
    assert_int_equal(
        virtio_mmio_init(&b, &fake_ops, f, &f->mem, 0, NULL, 0, fake_irq, f),
        0);
    struct state_r r;
    state_r_init(&r, w.buf, w.len);
    assert_int_equal(virtio_mmio_restore(&b, &r), 0);
    assert_int_equal(mock_rd(&b, VIRTIO_MMIO_STATUS), ST_ALL);
    virtio_mmio_free(&a);
    virtio_mmio_free(&b);
    state_w_free(&w);
}

/* The state the refusal tests start from: live, queue 0 with three chains
 * used (last_avail = used_idx = 3), queue 1 half set up. */
static void refusal_state(struct fake *a, struct state_w *w)
{
    go_live(a, F_VERSION_1 | F_DEV_BIT0);
    for (uint16_t i = 0; i < 3; i++)
        post(a, i);
    virtio_mmio_notify(&a->dev, 0);
    queue1_half_set_up(a);
    a->model_value = 77;
    save(a, w);
}

static void restore_refuses_truncated_or_extended_state(void **state)
{
    struct fake *a = *state;
    struct state_w w;
    refusal_state(a, &w);
    /* One device through every refusal: each leaves it fresh. */
    struct fake *b = fake_like(a);
    for (size_t len = 0; len < w.len; len++) {
        assert_int_equal(restore(b, w.buf, len), -EBADMSG);
        assert_fresh(b);
    }
    uint8_t *longer = malloc(w.len + 1);
    assert_non_null(longer);
    memcpy(longer, w.buf, w.len);
    longer[w.len] = 0;
    assert_int_equal(restore(b, longer, w.len + 1), -EBADMSG);
    assert_fresh(b);
    assert_int_equal(restore(b, NULL, 0), -EBADMSG);
    assert_fresh(b);
    free(longer);
    assert_int_equal(restore(b, w.buf, w.len), 0);
    assert_int_equal(b->model_value, 77);
    /* Only onto a fresh device. */
    assert_int_equal(restore(b, w.buf, w.len), -EBUSY);
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_STATUS),
                     ST_ALL | VIRTIO_STATUS_DRIVER_OK);
    fake_delete(b);
    state_w_free(&w);
}

/* Offsets into refusal_state's bytes (virtio_mmio_save's layout). */
enum {
    AT_VERSION = 0,
    AT_DEVICE_ID = 4,
    AT_NUM_QUEUES = 8,
    AT_STATUS = 10,
    AT_OFFERED = 14,
    AT_ACCEPTED = 22,
    AT_ISR = 46,
    AT_CONFIG_SIZE = 50,
    AT_Q0 = 62, /* ready u8, size u16, desc, avail, used u64 */
    AT_Q0_BROKEN = AT_Q0 + 27,
    AT_Q0_USED_IDX = AT_Q0 + 30,
    AT_Q0_SIGNALLED_VALID = AT_Q0 + 34,
    AT_Q1 = AT_Q0 + 35, /* not ready: ready, size, three addresses */
    AT_MODEL_LEN = AT_Q1 + 27,
    AT_MODEL = AT_MODEL_LEN + 4,
    STATE_LEN = AT_MODEL + 8,
};

struct patch {
    const char *what;
    unsigned int at, len;
    uint64_t value;
};

static void restore_refuses_impossible_values(void **state)
{
    struct fake *a = *state;
    struct state_w w;
    refusal_state(a, &w);
    assert_int_equal(w.len, STATE_LEN);
    const uint64_t offer = FAKE_OFFER | F_VERSION_1;
    const struct patch patches[] = {
        {"layout version", AT_VERSION, 4, 2},
        {"another device", AT_DEVICE_ID, 4, 43},
        {"another queue count", AT_NUM_QUEUES, 2, 3},
        {"status above a byte", AT_STATUS, 4, 0x10f},
        {"FEATURES_OK without DRIVER", AT_STATUS, 4,
         VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FEATURES_OK |
             VIRTIO_STATUS_DRIVER_OK},
        {"DRIVER_OK without FEATURES_OK", AT_STATUS, 4,
         VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
             VIRTIO_STATUS_DRIVER_OK},
        {"a ready queue before FEATURES_OK", AT_STATUS, 4,
         VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER},
        {"offered what the device does not offer", AT_OFFERED, 8,
         offer | F_DEV_BIT1},
        {"offered without VERSION_1", AT_OFFERED, 8, offer & ~F_VERSION_1},
        {"accepted what was not offered", AT_ACCEPTED, 8,
         F_VERSION_1 | F_DEV_BIT1},
        {"accepted without VERSION_1", AT_ACCEPTED, 8, F_DEV_BIT0},
        {"undefined InterruptStatus bits", AT_ISR, 4, 4},
        {"config space of another size", AT_CONFIG_SIZE, 4, 7},
        {"ready neither 0 nor 1", AT_Q0, 1, 2},
        {"queue size not a power of two", AT_Q0 + 1, 2, 12},
        {"queue size above QueueNumMax", AT_Q0 + 1, 2, 32},
        {"queue size 0 on a ready queue", AT_Q0 + 1, 2, 0},
        {"descriptor table misaligned", AT_Q0 + 3, 8, RING + 8},
        {"descriptor table outside RAM", AT_Q0 + 3, 8, RAM},
        {"used ring beyond any RAM", AT_Q0 + 19, 8, 1ULL << 40},
        {"avail ring wrapping the address space", AT_Q0 + 11, 8,
         UINT64_MAX - 1},
        {"broken neither 0 nor 1", AT_Q0_BROKEN, 1, 2},
        {"more chains in flight than the ring holds", AT_Q0_USED_IDX, 2,
         (uint16_t)(3 - 9)},
        {"signalled_valid neither 0 nor 1", AT_Q0_SIGNALLED_VALID, 1, 7},
        {"ready (queue 1) neither 0 nor 1", AT_Q1, 1, 0xff},
        {"ready queue 1 of size 0", AT_Q1, 1, 1},
        {"QueueNum above any queue", AT_Q1 + 1, 2, VIRTQ_MAX_SIZE + 1},
        {"model state shorter than the rest", AT_MODEL_LEN, 4, 7},
        {"model state longer than the rest", AT_MODEL_LEN, 4, 9},
        {"model state past the end", AT_MODEL_LEN, 4, UINT32_MAX},
        {"model layout version", AT_MODEL, 4, 9},
        {"a model value the model refuses", AT_MODEL + 4, 4, FAKE_BAD_VALUE},
    };
    struct fake *b = fake_like(a);
    uint8_t *p = malloc(w.len);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        const struct patch *c = &patches[i];
        memcpy(p, w.buf, w.len);
        for (unsigned int k = 0; k < c->len; k++)
            p[c->at + k] = (uint8_t)(c->value >> (8 * k));
        print_message("refusing: %s\n", c->what);
        assert_int_equal(restore(b, p, w.len), -EBADMSG);
        assert_fresh(b);
    }
    /* The model's own failure is passed on, and resets the device too. */
    b->restore_ret = -EIO;
    assert_int_equal(restore(b, w.buf, w.len), -EIO);
    assert_int_equal(mock_rd(&b->dev, VIRTIO_MMIO_STATUS), 0);
    assert_false(b->dev.queues[0].ready);
    b->restore_ret = 0;
    assert_int_equal(restore(b, w.buf, w.len), 0);
    free(p);
    fake_delete(b);
    state_w_free(&w);
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void restore_survives_garbage_and_bit_flips(void **state)
{
    struct fake *a = *state;
    struct state_w w;
    refusal_state(a, &w);
    struct fake *b = fake_like(a);
    uint32_t x = 2463534242u;
    uint8_t junk[512];
    for (int i = 0; i < 2000; i++) {
        size_t len = xorshift(&x) % sizeof(junk);
        for (size_t k = 0; k < len; k++)
            junk[k] = (uint8_t)xorshift(&x);
        assert_int_equal(restore(b, junk, len), -EBADMSG);
        assert_fresh(b);
    }
    /* Every byte of a good state flipped in turn: refused, or restored
     * to a device that works through its register file. */
    uint8_t *p = malloc(w.len);
    assert_non_null(p);
    for (size_t at = 0; at < w.len; at++) {
        for (unsigned int bit = 0; bit < 8; bit++) {
            memcpy(p, w.buf, w.len);
            p[at] ^= (uint8_t)(1u << bit);
            int ret = restore(b, p, w.len);
            if (ret == -EBADMSG) {
                assert_fresh(b);
                continue;
            }
            assert_int_equal(ret, 0);
            for (uint64_t off = 0; off < 0x100; off += 4)
                (void)mock_rd(&b->dev, off);
            post(b, (uint16_t)(at % 8));
            mock_wr(&b->dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
            mock_wr(&b->dev, VIRTIO_MMIO_QUEUE_READY, 1);
            fake_delete(b);
            b = fake_like(a);
        }
    }
    free(p);
    fake_delete(b);
    state_w_free(&w);
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
        T(snapshot_restores_a_live_device),
        T(snapshot_before_driver_ok_activates_later),
        T(snapshot_with_a_held_chain_pops_it_again),
        T(snapshot_of_a_device_needing_reset),
        T(snapshot_of_a_device_without_config_space),
        T(restore_refuses_truncated_or_extended_state),
        T(restore_refuses_impossible_values),
        T(restore_survives_garbage_and_bit_flips),
    };
    return cmocka_run_group_tests_name("virtio_mmio", tests, NULL, NULL);
}
