#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boot/x86_64/layout.h"
#include "devices/virtio_net.h"
#include "tests/unit/mock_virtio_driver.h"
#include "vmm/evloop.h"
#include "vmm/guest_mem.h"

#define RAM    (4 * MiB)
#define RXRING 0x10000ULL
#define TXRING 0x20000ULL
#define BUF    0x100000ULL

/* The tap is faked by a datagram socketpair: like a tap fd, each read
 * returns one frame and each write sends one. */
struct fixture {
    struct guest_mem mem;
    struct evloop loop;
    struct virtio_net *net;
    struct mock_vq rx, tx;
    int sv[2]; /* sv[0] is the "tap", sv[1] the world behind it */
    int irqs;
};

static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void count_irq(void *opaque)
{
    ((struct fixture *)opaque)->irqs++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    assert_int_equal(evloop_init(&f->loop), 0);
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, f->sv), 0);
    assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
    f->net = calloc(1, sizeof(*f->net));
    assert_non_null(f->net);
    assert_int_equal(virtio_net_init(f->net, &f->mem, &f->loop, f->sv[0],
                                     test_mac, count_irq, f),
                     0);
    struct virtio_dev *dev = &f->net->vdev;
    mock_vq_init(&f->rx, &f->mem, 16, RXRING);
    mock_vq_init(&f->tx, &f->mem, 16, TXRING);
    uint32_t st = mock_negotiate(dev, (1ULL << VIRTIO_F_VERSION_1) |
                                          (1ULL << VIRTIO_NET_F_MAC));
    assert_true(st & VIRTIO_STATUS_FEATURES_OK);
    mock_queue_setup(dev, VIRTIO_NET_RXQ, &f->rx);
    mock_queue_setup(dev, VIRTIO_NET_TXQ, &f->tx);
    mock_wr(dev, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_net_free(f->net);
    free(f->net);
    close(f->sv[0]);
    close(f->sv[1]);
    evloop_free(&f->loop);
    gm_free(&f->mem);
    free(f);
    return 0;
}

static uint8_t *host(struct fixture *f, uint64_t gpa, uint64_t len)
{
    uint8_t *p = gm_ptr(&f->mem, gpa, len);
    assert_non_null(p);
    return p;
}

static void run_loop(struct fixture *f, int ms)
{
    assert_int_equal(evloop_run(&f->loop, ms), -ETIMEDOUT);
}

static bool needs_reset(struct fixture *f)
{
    return mock_rd(&f->net->vdev, VIRTIO_MMIO_STATUS) &
           VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static void mac_in_config_space(void **state)
{
    struct fixture *f = *state;
    uint8_t mac[6];
    for (int i = 0; i < 6; i++)
        virtio_mmio_read(&f->net->vdev, VIRTIO_MMIO_CONFIG + i, &mac[i], 1);
    assert_memory_equal(mac, test_mac, 6);
    mock_wr(&f->net->vdev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_true(mock_rd(&f->net->vdev, VIRTIO_MMIO_DEVICE_FEATURES) &
                (1u << VIRTIO_NET_F_MAC));
    assert_int_equal(mock_rd(&f->net->vdev, VIRTIO_MMIO_DEVICE_ID), 1);
}

static void tx_header_and_frame_to_tap(void **state)
{
    struct fixture *f = *state;
    /* Header and frame in two descriptors, as Linux sends them. */
    memset(host(f, BUF, 12), 0, 12);
    memcpy(host(f, BUF + 0x100, 60), "frame-bytes", 11);
    mock_desc(&f->tx, 0, BUF, 12, VRING_DESC_F_NEXT, 1);
    mock_desc(&f->tx, 1, BUF + 0x100, 60, 0, 0);
    mock_publish(&f->tx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_TXQ);
    uint8_t got[128];
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), 72);
    assert_memory_equal(got + 12, "frame-bytes", 11);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(f->net->tx_frames, 1);
}

static void rx_frame_sets_num_buffers(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->rx, 0, BUF, 1526, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->rx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    uint8_t frame[12 + 64];
    memset(frame, 0, sizeof(frame));
    memset(frame + 10, 0xee, 2); /* junk where num_buffers goes */
    memcpy(frame + 12, "incoming", 8);
    assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), sizeof(frame));
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, sizeof(frame));
    uint16_t nb;
    memcpy(&nb, host(f, BUF + 10, 2), 2);
    assert_int_equal(nb, 1);
    assert_memory_equal(host(f, BUF + 12, 8), "incoming", 8);
    assert_true(f->irqs > 0);
}

static void rx_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    uint8_t frame[40] = {0};
    for (int i = 0; i < 3; i++) {
        frame[12] = (uint8_t)i;
        assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), 40);
    }
    run_loop(f, 20); /* no buffers: nothing read, no spinning */
    assert_int_equal(f->net->rx_frames, 0);
    for (uint16_t i = 0; i < 3; i++) {
        mock_desc(&f->rx, i, BUF + 0x1000 * i, 2048, VRING_DESC_F_WRITE, 0);
        mock_publish(&f->rx, i);
    }
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    for (int i = 0; i < 3; i++) {
        uint32_t id, len;
        assert_int_equal(mock_used(&f->rx, &id, &len), 1);
        assert_int_equal(len, 40);
        assert_int_equal(*host(f, BUF + 0x1000 * id + 12, 1), i);
    }
}

static void rx_buffer_too_small_needs_reset(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->rx, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->rx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    assert_true(needs_reset(f));
}

static void tx_writable_descriptor_needs_reset(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->tx, 0, BUF, 12, VRING_DESC_F_NEXT, 1);
    mock_desc(&f->tx, 1, BUF + 0x100, 60, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->tx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_TXQ);
    assert_true(needs_reset(f));
    uint8_t got[128];
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), -1);
}

static void parse_mac(void **state)
{
    (void)state;
    uint8_t mac[6];
    assert_int_equal(virtio_net_parse_mac("52:54:00:ab:CD:ef", mac), 0);
    assert_int_equal(mac[4], 0xcd);
    assert_int_equal(virtio_net_parse_mac("52:54:00:ab:cd", mac), -EINVAL);
    assert_int_equal(virtio_net_parse_mac("52:54:00:ab:cd:ef:", mac),
                     -EINVAL);
    assert_int_equal(virtio_net_parse_mac("01:00:5e:00:00:01", mac),
                     -EINVAL);
    assert_int_equal(virtio_net_parse_mac("zz:54:00:ab:cd:ef", mac),
                     -EINVAL);
}

static void open_missing_tap_is_enodev(void **state)
{
    (void)state;
    assert_int_equal(virtio_net_open_tap("runvm-no-such0"), -ENODEV);
    assert_int_equal(virtio_net_open_tap(""), -EINVAL);
    assert_int_equal(virtio_net_open_tap("a-name-far-too-long-for-ifnamsiz"),
                     -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(mac_in_config_space),
        T(tx_header_and_frame_to_tap),
        T(rx_frame_sets_num_buffers),
        T(rx_waits_for_buffers),
        T(rx_buffer_too_small_needs_reset),
        T(tx_writable_descriptor_needs_reset),
        cmocka_unit_test(parse_mac),
        cmocka_unit_test(open_missing_tap_is_enodev),
    };
    return cmocka_run_group_tests_name("virtio_net", tests, NULL, NULL);
}
