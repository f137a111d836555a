#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/virtq.h"
#include "tests/unit/mock_virtio_driver.h"
#include "core/guest_mem.h"

#define RAM   (1 * MiB)
#define RING  0x10000ULL /* rings of the mock queue */
#define BUF   0x40000ULL /* data buffers */
#define QSIZE 8

struct fixture {
    struct guest_mem mem;
    struct mock_vq m;
    struct virtq vq;
    struct virtq_elem elem;
};

static int setup_size(void **state, uint16_t size, bool event_idx,
                      bool indirect)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    mock_vq_init(&f->m, &f->mem, size, RING);
    virtq_reset(&f->vq);
    f->vq.size = size;
    f->vq.desc_gpa = f->m.desc;
    f->vq.avail_gpa = f->m.avail;
    f->vq.used_gpa = f->m.used;
    assert_int_equal(
        virtq_enable(&f->vq, &f->mem, VIRTQ_MAX_SIZE, event_idx, indirect), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_size(state, QSIZE, false, true);
}

static int setup_event_idx(void **state)
{
    return setup_size(state, QSIZE, true, true);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gm_free(&f->mem);
    free(f);
    return 0;
}

static uint8_t *host(struct fixture *f, uint64_t gpa)
{
    return gm_ptr(&f->mem, gpa, 1);
}

static void pop_simple_chain(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 3, BUF, 16, VRING_DESC_F_NEXT, 5);
    mock_desc(&f->m, 5, BUF + 0x100, 32, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 3);
    assert_true(virtq_has_avail(&f->vq));
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.head, 3);
    assert_int_equal(f->elem.out_num, 1);
    assert_int_equal(f->elem.in_num, 1);
    assert_int_equal(f->elem.out_len, 16);
    assert_int_equal(f->elem.in_len, 32);
    assert_ptr_equal(f->elem.iov[0].iov_base, host(f, BUF));
    assert_ptr_equal(f->elem.iov[1].iov_base, host(f, BUF + 0x100));
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 0);
    assert_false(virtq_has_avail(&f->vq));

    virtq_push(&f->vq, &f->elem, 10);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->m, &id, &len), 1);
    assert_int_equal(id, 3);
    assert_int_equal(len, 10);
    assert_int_equal(mock_used(&f->m, &id, &len), 0);
    assert_true(virtq_need_interrupt(&f->vq));
    assert_false(virtq_need_interrupt(&f->vq)); /* nothing new */
}

static void push_clamps_written(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_push(&f->vq, &f->elem, 1000);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->m, &id, &len), 1);
    assert_int_equal(len, 8);
}

static void looping_chain_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    mock_desc(&f->m, 1, BUF, 16, VRING_DESC_F_NEXT, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
    assert_true(f->vq.broken);
    /* Broken stays broken: no more chains, no more used updates. */
    mock_desc(&f->m, 2, BUF, 16, 0, 0);
    mock_publish(&f->m, 2);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
    assert_false(virtq_has_avail(&f->vq));
    assert_false(virtq_need_interrupt(&f->vq));
}

static void self_loop_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 4, BUF, 16, VRING_DESC_F_NEXT, 4);
    mock_publish(&f->m, 4);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void longest_chain_is_queue_size(void **state)
{
    struct fixture *f = *state;
    for (uint16_t i = 0; i < QSIZE; i++)
        mock_desc(&f->m, i, BUF + 16 * i, 16,
                  i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, i + 1);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.out_num, QSIZE);
}

static void address_past_ram_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, RAM - 8, 16, 0, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void address_in_mmio_hole_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, LAYOUT_VIRTIO_MMIO_BASE, 4, 0, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void length_overflow_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, UINT64_MAX - 4, 16, 0, 0); /* addr + len wraps */
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void huge_length_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, UINT32_MAX, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void readable_after_writable_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    mock_desc(&f->m, 1, BUF + 16, 16, 0, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void head_out_of_range_breaks(void **state)
{
    struct fixture *f = *state;
    mock_publish(&f->m, QSIZE);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void next_out_of_range_breaks(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, VRING_DESC_F_NEXT, 0xffff);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void avail_jump_beyond_size_breaks(void **state)
{
    struct fixture *f = *state;
    for (uint16_t i = 0; i < QSIZE; i++)
        mock_desc(&f->m, i, BUF, 16, 0, 0);
    mock_set_avail_idx(&f->m, QSIZE + 1);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
    assert_true(f->vq.broken);
}

static void avail_jump_of_size_is_fine(void **state)
{
    struct fixture *f = *state;
    for (uint16_t i = 0; i < QSIZE; i++) {
        mock_desc(&f->m, i, BUF, 16, 0, 0);
        mock_publish(&f->m, i);
    }
    for (uint16_t i = 0; i < QSIZE; i++)
        assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 0);
}

static void indices_wrap_at_16_bits(void **state)
{
    struct fixture *f = *state;
    f->vq.last_avail = 65534;
    f->m.avail_idx = 65534;
    mock_desc(&f->m, 0, BUF, 16, 0, 0);
    for (int i = 0; i < 4; i++)
        mock_publish(&f->m, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->vq.last_avail, 2);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 0);
}

static void enable_rejects_bad_setup(void **state)
{
    struct fixture *f = *state;
    struct virtq vq;
    static const struct {
        uint16_t size;
        uint64_t desc, avail, used;
    } bad[] = {
        {0, RING, RING + 0x1000, RING + 0x2000},     /* size 0 */
        {3, RING, RING + 0x1000, RING + 0x2000},     /* not a power of two */
        {2048, RING, RING + 0x8000, RING + 0x9000},  /* above the maximum */
        {8, RING + 8, RING + 0x1000, RING + 0x2000}, /* desc misaligned */
        {8, RING, RING + 0x1001, RING + 0x2000},     /* avail misaligned */
        {8, RING, RING + 0x1000, RING + 0x2002},     /* used misaligned */
        {8, RAM - 64, RING + 0x1000, RING + 0x2000}, /* desc past RAM */
        {8, RING, RAM - 8, RING + 0x2000},           /* avail past RAM */
        {8, RING, RING + 0x1000, RAM - 16},          /* used past RAM */
        {8, RING, RING + 0x1000, UINT64_MAX - 3},    /* used wraps */
        {8, RING, LAYOUT_MMIO_HOLE_START, RING + 0x2000},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        virtq_reset(&vq);
        vq.size = bad[i].size;
        vq.desc_gpa = bad[i].desc;
        vq.avail_gpa = bad[i].avail;
        vq.used_gpa = bad[i].used;
        assert_int_equal(virtq_enable(&vq, &f->mem, 1024, false, false),
                         -EINVAL);
        assert_false(vq.ready);
        assert_int_equal(virtq_pop(&vq, &f->elem), 0);
    }
    /* Within the device's own maximum only. */
    virtq_reset(&vq);
    vq.size = 16;
    vq.desc_gpa = RING;
    vq.avail_gpa = RING + 0x1000;
    vq.used_gpa = RING + 0x2000;
    assert_int_equal(virtq_enable(&vq, &f->mem, 8, false, false), -EINVAL);
    assert_int_equal(virtq_enable(&vq, &f->mem, 16, false, false), 0);
}

static void indirect_table(void **state)
{
    struct fixture *f = *state;
    /* Table of three descriptors at BUF + 0x1000: out, in, in. */
    uint64_t t = BUF + 0x1000;
    struct mock_vq tab = f->m;
    tab.desc = t;
    mock_desc(&tab, 0, BUF, 10, VRING_DESC_F_NEXT, 2);
    mock_desc(&tab, 2, BUF + 0x100, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
              1);
    mock_desc(&tab, 1, BUF + 0x200, 30, VRING_DESC_F_WRITE, 0);
    mock_desc(&f->m, 0, t, 48, VRING_DESC_F_INDIRECT, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.out_num, 1);
    assert_int_equal(f->elem.in_num, 2);
    assert_int_equal(f->elem.in_len, 50);
    assert_int_equal(f->elem.head, 0);
}

static void indirect_hostile(void **state)
{
    struct fixture *f = *state;
    uint64_t t = BUF + 0x1000;
    struct mock_vq tab = f->m;
    tab.desc = t;
    static const struct {
        uint32_t len;
        uint16_t head_flags;
        uint16_t e0_flags, e0_next;
    } bad[] = {
        {48, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 0, 0}, /* + NEXT */
        {47, VRING_DESC_F_INDIRECT, 0, 0}, /* not whole entries */
        {0, VRING_DESC_F_INDIRECT, 0, 0},  /* empty table */
        {48, VRING_DESC_F_INDIRECT, VRING_DESC_F_INDIRECT, 0},   /* nested */
        {48, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, 0},       /* loop */
        {48, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, 3},       /* next OOB */
        {16 * (VIRTQ_MAX_IOV + 1), VRING_DESC_F_INDIRECT, 0, 0}, /* huge */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        teardown(state);
        setup(state);
        f = *state;
        tab = f->m;
        tab.desc = t;
        mock_desc(&tab, 0, BUF, 8, bad[i].e0_flags, bad[i].e0_next);
        mock_desc(&f->m, 0, t, bad[i].len, bad[i].head_flags, 1);
        mock_publish(&f->m, 0);
        assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
    }
}

static void indirect_not_negotiated(void **state)
{
    teardown(state);
    setup_size(state, QSIZE, false, false);
    struct fixture *f = *state;
    struct mock_vq tab = f->m;
    tab.desc = BUF + 0x1000;
    mock_desc(&tab, 0, BUF, 8, 0, 0);
    mock_desc(&f->m, 0, BUF + 0x1000, 16, VRING_DESC_F_INDIRECT, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void indirect_table_past_ram(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, RAM - 16, 32, VRING_DESC_F_INDIRECT, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), -EIO);
}

static void unpop_gives_back(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 1, BUF, 16, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 1);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_unpop(&f->vq);
    assert_true(virtq_has_avail(&f->vq));
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(f->elem.head, 1);
}

static void no_interrupt_flag_respected(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, 0, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    mock_set_avail_flags(&f->m, VRING_AVAIL_F_NO_INTERRUPT);
    virtq_push(&f->vq, &f->elem, 0);
    assert_false(virtq_need_interrupt(&f->vq));
}

static void event_idx_publishes_avail_event(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, 0, 0);
    mock_publish(&f->m, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 0);
    /* Emptied the queue: the driver must kick for slot 2 onwards. */
    assert_int_equal(mock_avail_event(&f->m), 2);
}

static void event_idx_suppresses_interrupts(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->m, 0, BUF, 16, 0, 0);
    for (int i = 0; i < 4; i++)
        mock_publish(&f->m, 0);
    /* The driver wants an interrupt once used->idx passes 2. */
    mock_set_used_event(&f->m, 2);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_push(&f->vq, &f->elem, 0);
    assert_true(virtq_need_interrupt(&f->vq)); /* first one always */
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_push(&f->vq, &f->elem, 0); /* used idx 2: event 2 not crossed */
    assert_false(virtq_need_interrupt(&f->vq));
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_push(&f->vq, &f->elem, 0); /* used idx 3: crossed 2 */
    assert_true(virtq_need_interrupt(&f->vq));
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    virtq_push(&f->vq, &f->elem, 0);
    assert_false(virtq_need_interrupt(&f->vq));
}

static void elem_copy_across_segments(void **state)
{
    struct fixture *f = *state;
    memcpy(host(f, BUF), "abc", 3);
    memcpy(host(f, BUF + 0x100), "defgh", 5);
    mock_desc(&f->m, 0, BUF, 3, VRING_DESC_F_NEXT, 1);
    mock_desc(&f->m, 1, BUF + 0x100, 5, VRING_DESC_F_NEXT, 2);
    mock_desc(&f->m, 2, BUF + 0x200, 2, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
              3);
    mock_desc(&f->m, 3, BUF + 0x300, 4, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->m, 0);
    assert_int_equal(virtq_pop(&f->vq, &f->elem), 1);
    char out[16] = {0};
    assert_int_equal(virtq_elem_read(&f->elem, 2, out, sizeof(out)), 6);
    assert_string_equal(out, "cdefgh");
    assert_int_equal(virtq_elem_write(&f->elem, 1, "WXYZ!", 5), 5);
    assert_memory_equal(host(f, BUF + 0x201), "W", 1);
    assert_memory_equal(host(f, BUF + 0x300), "XYZ!", 4);
    assert_int_equal(virtq_elem_write(&f->elem, 5, "z", 1), 1);
    assert_int_equal(virtq_elem_write(&f->elem, 6, "z", 1), 0);
}

int main(void)
{
#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_event_idx, teardown)
    const struct CMUnitTest tests[] = {
        T(pop_simple_chain),
        T(push_clamps_written),
        T(looping_chain_breaks),
        T(self_loop_breaks),
        T(longest_chain_is_queue_size),
        T(address_past_ram_breaks),
        T(address_in_mmio_hole_breaks),
        T(length_overflow_breaks),
        T(huge_length_breaks),
        T(readable_after_writable_breaks),
        T(head_out_of_range_breaks),
        T(next_out_of_range_breaks),
        T(avail_jump_beyond_size_breaks),
        T(avail_jump_of_size_is_fine),
        T(indices_wrap_at_16_bits),
        T(enable_rejects_bad_setup),
        T(indirect_table),
        T(indirect_hostile),
        T(indirect_not_negotiated),
        T(indirect_table_past_ram),
        T(unpop_gives_back),
        T(no_interrupt_flag_respected),
        TE(event_idx_publishes_avail_event),
        TE(event_idx_suppresses_interrupts),
        TE(indices_wrap_at_16_bits),
        T(elem_copy_across_segments),
    };
    return cmocka_run_group_tests_name("virtq", tests, NULL, NULL);
}
