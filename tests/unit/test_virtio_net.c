#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "devices/virtio_net.h"
#include "tests/unit/mock_virtio_driver.h"
#include "core/evloop.h"
#include "core/guest_mem.h"
#include "core/state.h"

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

/* The fake tap is a socket, which has no TUNSETOFFLOAD: the device's
 * ioctl is wrapped (-Wl,--wrap=ioctl) and what it asks for is recorded. */
static int offload_calls;
static unsigned long last_offloads;

int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (request == TUNSETOFFLOAD) {
        offload_calls++;
        last_offloads = (unsigned long)arg;
        return 0;
    }
    return __real_ioctl(fd, request, arg);
}

static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void count_irq(void *opaque)
{
    ((struct fixture *)opaque)->irqs++;
}

static int setup_with(void **state, uint64_t net_features)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    assert_int_equal(evloop_init(&f->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, f->sv),
                     0);
    assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
    f->net = calloc(1, sizeof(*f->net));
    assert_non_null(f->net);
    assert_int_equal(virtio_net_init(f->net, &f->mem, &f->loop, f->sv[0],
                                     test_mac, count_irq, f),
                     0);
    struct virtio_dev *dev = &f->net->vdev;
    mock_vq_init(&f->rx, &f->mem, 16, RXRING);
    mock_vq_init(&f->tx, &f->mem, 16, TXRING);
    uint32_t st =
        mock_negotiate(dev, (1ULL << VIRTIO_F_VERSION_1) |
                                (1ULL << VIRTIO_NET_F_MAC) | net_features);
    assert_true(st & VIRTIO_STATUS_FEATURES_OK);
    mock_queue_setup(dev, VIRTIO_NET_RXQ, &f->rx);
    mock_queue_setup(dev, VIRTIO_NET_TXQ, &f->tx);
    mock_wr(dev, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    *state = f;
    return 0;
}

/* A driver that takes indirect descriptors. */
static int setup_indirect(void **state)
{
    return setup_with(state, 1ULL << 28 /* VIRTIO_RING_F_INDIRECT_DESC */);
}

/* A driver that takes no offloads. */
static int setup(void **state)
{
    return setup_with(state, 0);
}

/* A driver that takes checksum and TCPv4 segmentation offload only. */
static int setup_csum_tso4(void **state)
{
    return setup_with(state, (1ULL << VIRTIO_NET_F_CSUM) |
                                 (1ULL << VIRTIO_NET_F_HOST_TSO4));
}

/* A driver that takes receive checksum and TCPv4 segmentation offload. */
static int setup_guest_csum_tso4(void **state)
{
    offload_calls = 0;
    last_offloads = ~0UL;
    return setup_with(state, (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
                                 (1ULL << VIRTIO_NET_F_GUEST_TSO4));
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
    /* What a tap may hand over: DATA_VALID (a NIC checked the frame),
     * junk where num_buffers goes. */
    frame[0] = VIRTIO_NET_HDR_F_DATA_VALID;
    memset(frame + 10, 0xee, 2);
    memcpy(frame + 12, "incoming", 8);
    assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), sizeof(frame));
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, sizeof(frame));
    /* Without GUEST_CSUM the driver sees flags 0 (§5.1.6.4.1). */
    static const uint8_t want[12] = {[10] = 1};
    assert_memory_equal(host(f, BUF, 12), want, 12);
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

/* A receive chain longer than readv takes is a driver error, reported
 * once: not an error line on every kick for as long as the guest likes. */
static void rx_chain_over_iov_max_needs_reset(void **state)
{
    struct fixture *f = *state;
    /* An indirect table of the longest chain the device takes: with the
     * header's own iovec in front, one more than readv takes. */
    const uint64_t table = BUF + 0x40000;
    for (uint16_t i = 0; i < VIRTQ_MAX_IOV; i++) {
        struct {
            uint64_t addr;
            uint32_t len;
            uint16_t flags, next;
        } d = {
            .addr = BUF + 16 * i,
            .len = 16,
            .flags = VRING_DESC_F_WRITE |
                     (i + 1 < VIRTQ_MAX_IOV ? VRING_DESC_F_NEXT : 0),
            .next = (uint16_t)(i + 1),
        };
        memcpy(host(f, table + sizeof(d) * i, sizeof(d)), &d, sizeof(d));
    }
    mock_desc(&f->rx, 0, table, VIRTQ_MAX_IOV * 16, VRING_DESC_F_INDIRECT, 0);
    mock_publish(&f->rx, 0);
    uint8_t frame[40] = {0};
    assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), 40);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    run_loop(f, 20);
    assert_true(needs_reset(f));
    assert_int_equal(f->net->rx_frames, 0);
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

/* Puts a one-descriptor frame (header h, then 60 bytes "payload") on the
 * transmit queue at descriptor i and notifies. */
static void tx_one(struct fixture *f, uint16_t i,
                   const struct virtio_net_hdr_v1 *h)
{
    uint64_t gpa = BUF + 0x1000 * i;
    memcpy(host(f, gpa, 12), h, 12);
    memset(host(f, gpa + 12, 60), 0, 60);
    memcpy(host(f, gpa + 12, 7), "payload", 7);
    mock_desc(&f->tx, i, gpa, 72, 0, 0);
    mock_publish(&f->tx, i);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_TXQ);
}

static void offloads_offered(void **state)
{
    struct fixture *f = *state;
    mock_wr(&f->net->vdev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t feat = mock_rd(&f->net->vdev, VIRTIO_MMIO_DEVICE_FEATURES);
    assert_true(feat & (1u << VIRTIO_NET_F_CSUM));
    assert_true(feat & (1u << VIRTIO_NET_F_HOST_TSO4));
    assert_true(feat & (1u << VIRTIO_NET_F_HOST_TSO6));
    assert_true(feat & (1u << VIRTIO_NET_F_GUEST_CSUM));
    assert_true(feat & (1u << VIRTIO_NET_F_GUEST_TSO4));
    assert_true(feat & (1u << VIRTIO_NET_F_GUEST_TSO6));
    /* One frame per buffer; no UDP or ECN offloads. */
    assert_false(feat & (1u << VIRTIO_NET_F_MRG_RXBUF));
    assert_false(feat & (1u << VIRTIO_NET_F_GUEST_UFO));
    assert_false(feat & (1u << VIRTIO_NET_F_GUEST_ECN));
}

/* Without CSUM/TSO negotiated, a header asking for them is refused: the
 * chain comes back used, nothing reaches the tap, and the next plain
 * frame still goes through. */
static void tx_unnegotiated_offload_dropped(void **state)
{
    struct fixture *f = *state;
    struct virtio_net_hdr_v1 csum = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                     .csum_start = 34,
                                     .csum_offset = 16};
    struct virtio_net_hdr_v1 gso = {.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                    .gso_size = 1448};
    struct virtio_net_hdr_v1 valid = {.flags = VIRTIO_NET_HDR_F_DATA_VALID};
    struct virtio_net_hdr_v1 plain = {0};
    tx_one(f, 0, &csum);
    tx_one(f, 1, &gso);
    tx_one(f, 2, &valid);
    tx_one(f, 3, &plain);
    uint8_t got[128];
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), 72);
    assert_memory_equal(got + 12, "payload", 7);
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), -1);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t id, len;
        assert_int_equal(mock_used(&f->tx, &id, &len), 1);
        assert_int_equal(id, i);
    }
    assert_int_equal(f->net->tx_dropped, 3);
    assert_int_equal(f->net->tx_frames, 1);
    assert_false(needs_reset(f));
}

/* With CSUM and HOST_TSO4 negotiated the header reaches the tap as the
 * driver wrote it; TCPv6 segmentation (not negotiated) and ECN (not
 * offered) do not. */
static void tx_negotiated_offload_passes(void **state)
{
    struct fixture *f = *state;
    struct virtio_net_hdr_v1 tso4 = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                     .hdr_len = 54,
                                     .gso_size = 1448,
                                     .csum_start = 34,
                                     .csum_offset = 16};
    struct virtio_net_hdr_v1 tso6 = tso4, ecn = tso4;
    tso6.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    ecn.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
    tx_one(f, 0, &tso6);
    tx_one(f, 1, &ecn);
    tx_one(f, 2, &tso4);
    uint8_t got[128];
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), 72);
    /* num_buffers is the driver's to leave as it likes; the tap takes
     * the first 10 bytes. */
    assert_memory_equal(got, &tso4, 10);
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), -1);
    assert_int_equal(f->net->tx_dropped, 2);
    assert_int_equal(f->net->tx_frames, 1);
}

/* The header may be split across descriptors anywhere, and share its
 * last descriptor with the frame: the tap still gets header + frame. */
static void tx_header_split_oddly(void **state)
{
    struct fixture *f = *state;
    uint8_t *p = host(f, BUF, 0x400);
    memset(p, 0, 0x400);
    memcpy(p + 0x200 + 7, "split-frame", 11);
    mock_desc(&f->tx, 0, BUF, 5, VRING_DESC_F_NEXT, 1);
    mock_desc(&f->tx, 1, BUF + 0x100, 0, VRING_DESC_F_NEXT, 2);
    mock_desc(&f->tx, 2, BUF + 0x200, 7 + 40, 0, 0);
    mock_publish(&f->tx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_TXQ);
    uint8_t got[128];
    assert_int_equal(recv(f->sv[1], got, sizeof(got), 0), 52);
    assert_memory_equal(got + 12, "split-frame", 11);
    assert_int_equal(f->net->tx_frames, 1);
}

/* A chain shorter than the header is a broken driver. */
static void tx_short_header_needs_reset(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->tx, 0, BUF, 11, 0, 0);
    mock_publish(&f->tx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_TXQ);
    assert_true(needs_reset(f));
}

/* Receives one frame of header h and 64 bytes into a fresh 64 KiB buffer
 * at descriptor i; returns the used length (0: nothing came back). */
static uint32_t rx_one(struct fixture *f, uint16_t i,
                       const struct virtio_net_hdr_v1 *h)
{
    mock_desc(&f->rx, i, BUF + 0x10000 * i, 0x10000, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->rx, i);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    uint8_t frame[12 + 64];
    memcpy(frame, h, 12);
    memset(frame + 12, 0, 64);
    memcpy(frame + 12, "segment", 7);
    assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), sizeof(frame));
    run_loop(f, 20);
    uint32_t id, len;
    if (mock_used(&f->rx, &id, &len) != 1)
        return 0;
    assert_int_equal(id, i);
    return len;
}

/* The tap is told exactly the offloads the driver took, and its header of
 * a segmented, partly checksummed frame reaches the driver as it was, but
 * with num_buffers 1. */
static void rx_negotiated_offload_passes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(offload_calls, 1);
    assert_int_equal(last_offloads, TUN_F_CSUM | TUN_F_TSO4);
    struct virtio_net_hdr_v1 tso4 = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                     .hdr_len = 54,
                                     .gso_size = 1448,
                                     .csum_start = 34,
                                     .csum_offset = 16,
                                     .num_buffers = 0xeeee};
    assert_int_equal(rx_one(f, 0, &tso4), 12 + 64);
    struct virtio_net_hdr_v1 want = tso4;
    want.num_buffers = 1;
    assert_memory_equal(host(f, BUF, 12), &want, 12);
    assert_memory_equal(host(f, BUF + 12, 7), "segment", 7);
    assert_int_equal(f->net->rx_frames, 1);
}

/* A tap header asking for what the driver did not take (TCPv6
 * segmentation, ECN, an unknown flag) is dropped, its buffer reused. */
static void rx_unnegotiated_offload_dropped(void **state)
{
    struct fixture *f = *state;
    struct virtio_net_hdr_v1 tso6 = {.gso_type = VIRTIO_NET_HDR_GSO_TCPV6,
                                     .gso_size = 1448};
    struct virtio_net_hdr_v1 ecn = {.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 |
                                                VIRTIO_NET_HDR_GSO_ECN,
                                    .gso_size = 1448};
    struct virtio_net_hdr_v1 odd = {.flags = 0x80};
    assert_int_equal(rx_one(f, 0, &tso6), 0);
    struct virtio_net_hdr_v1 plain = {.flags = VIRTIO_NET_HDR_F_DATA_VALID};
    uint8_t frame[12 + 64] = {0};
    for (int i = 0; i < 2; i++) {
        memcpy(frame, i ? (void *)&odd : (void *)&ecn, 12);
        assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0),
                         sizeof(frame));
    }
    memcpy(frame, &plain, 12);
    memcpy(frame + 12, "after", 5);
    assert_int_equal(send(f->sv[1], frame, sizeof(frame), 0), sizeof(frame));
    run_loop(f, 20);
    /* The one buffer took the frame that was fit to pass. */
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_memory_equal(host(f, BUF + 12, 5), "after", 5);
    assert_int_equal(*host(f, BUF, 1), VIRTIO_NET_HDR_F_DATA_VALID);
    assert_int_equal(f->net->rx_dropped, 3);
    assert_int_equal(f->net->rx_frames, 1);
    assert_false(needs_reset(f));
}

/* A reset turns the tap's offloads off again. */
static void reset_turns_offloads_off(void **state)
{
    struct fixture *f = *state;
    mock_wr(&f->net->vdev, VIRTIO_MMIO_STATUS, 0);
    assert_int_equal(offload_calls, 2);
    assert_int_equal(last_offloads, 0);
}

static void open_missing_tap_is_enodev(void **state)
{
    (void)state;
    assert_int_equal(virtio_net_open_tap("runvm-no-such0"), -ENODEV);
    assert_int_equal(virtio_net_open_tap(""), -EINVAL);
    assert_int_equal(virtio_net_open_tap("a-name-far-too-long-for-ifnamsiz"),
                     -EINVAL);
}

/* ---- snapshots ----------------------------------------------------------- */

static void snapshot_save(struct fixture *f, struct state_w *w)
{
    state_w_init(w);
    assert_int_equal(virtio_mmio_save(&f->net->vdev, w), 0);
}

static int snapshot_restore(struct fixture *f, const uint8_t *p, size_t len)
{
    struct state_r r;
    state_r_init(&r, p, len);
    return virtio_mmio_restore(&f->net->vdev, &r);
}

/* The old VMM goes with its card and tap; the new one opens the tap again
 * (a new fd) and makes the card as before, not yet restored. */
static void new_vmm(struct fixture *f)
{
    virtio_net_free(f->net);
    close(f->sv[0]);
    close(f->sv[1]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, f->sv),
                     0);
    assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(virtio_net_init(f->net, &f->mem, &f->loop, f->sv[0],
                                     test_mac, count_irq, f),
                     0);
    f->irqs = 0;
    offload_calls = 0;
    last_offloads = ~0UL;
}

/* Transmits numbered frames until the tap would block: the last one is
 * then held. Returns how many went out. */
static int fill_tap(struct fixture *f)
{
    int tiny = 1; /* the kernel's least send buffer: a few frames */
    assert_int_equal(
        setsockopt(f->sv[0], SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny)), 0);
    struct virtio_net_hdr_v1 h = {0};
    int sent = 0;
    for (uint16_t i = 0; i < 16 && !f->net->tx_pending; i++) {
        tx_one(f, i, &h);
        *host(f, BUF + 0x1000 * i + 12 + 8, 1) = (uint8_t)i;
        if (!f->net->tx_pending)
            sent++;
    }
    assert_true(f->net->tx_pending);
    return sent;
}

static void snapshot_net_sends_held_frame_once(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->rx, 0, BUF + 0x80000, 2048, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->rx, 0);
    virtio_mmio_notify(&f->net->vdev, VIRTIO_NET_RXQ);
    int sent = fill_tap(f);
    struct state_w w;
    snapshot_save(f, &w);
    /* What reached the network before the old VMM went. */
    uint8_t frame[128];
    for (int i = 0; i < sent; i++)
        assert_int_equal(recv(f->sv[1], frame, sizeof(frame), 0), 72);
    assert_int_equal(recv(f->sv[1], frame, sizeof(frame), 0), -1);
    uint32_t id, len;
    for (int i = 0; i < sent; i++)
        assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);

    new_vmm(f);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    /* The tap is told the offloads the driver took, as activate did. */
    assert_int_equal(offload_calls, 1);
    assert_int_equal(last_offloads, TUN_F_CSUM | TUN_F_TSO4);
    /* The held frame reaches the network, once, and its chain is used. */
    assert_int_equal(recv(f->sv[1], frame, sizeof(frame), 0), 72);
    assert_memory_equal(frame + 12, "payload", 7);
    assert_int_equal(frame[12 + 8], sent);
    assert_int_equal(recv(f->sv[1], frame, sizeof(frame), 0), -1);
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, sent);
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);
    assert_true(f->irqs >= 1);
    /* A frame from the network fills the buffer posted before. */
    uint8_t in[12 + 64] = {0};
    memcpy(in + 12, "inbound", 7);
    assert_int_equal(send(f->sv[1], in, sizeof(in), 0), sizeof(in));
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(len, sizeof(in));
    assert_memory_equal(host(f, BUF + 0x80000 + 12, 7), "inbound", 7);
    state_w_free(&w);
}

static void restore_refuses_bad_net_state(void **state)
{
    struct fixture *f = *state;
    (void)fill_tap(f);
    struct state_w w;
    snapshot_save(f, &w);
    new_vmm(f);
    uint8_t *p = malloc(w.len + 1);
    assert_non_null(p);
    memcpy(p, w.buf, w.len);
    p[w.len] = 0;
    for (size_t len = 0; len <= w.len + 1; len++) {
        if (len == w.len)
            continue;
        assert_int_equal(snapshot_restore(f, p, len), -EBADMSG);
        assert_int_equal(mock_rd(&f->net->vdev, VIRTIO_MMIO_STATUS), 0);
        assert_false(f->net->tx_pending);
        assert_int_equal(offload_calls, 0);
    }
    p[w.len - 4] ^= 0x02; /* the card's layout version */
    assert_int_equal(snapshot_restore(f, p, w.len), -EBADMSG);
    assert_int_equal(mock_rd(&f->net->vdev, VIRTIO_MMIO_STATUS), 0);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    free(p);
    state_w_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(mac_in_config_space),
        T(tx_header_and_frame_to_tap),
        T(rx_frame_sets_num_buffers),
        T(rx_waits_for_buffers),
        cmocka_unit_test_setup_teardown(rx_chain_over_iov_max_needs_reset,
                                        setup_indirect, teardown),
        T(rx_buffer_too_small_needs_reset),
        T(tx_writable_descriptor_needs_reset),
        T(offloads_offered),
        T(tx_unnegotiated_offload_dropped),
        T(tx_header_split_oddly),
        T(tx_short_header_needs_reset),
        cmocka_unit_test_setup_teardown(tx_negotiated_offload_passes,
                                        setup_csum_tso4, teardown),
        cmocka_unit_test_setup_teardown(rx_negotiated_offload_passes,
                                        setup_guest_csum_tso4, teardown),
        cmocka_unit_test_setup_teardown(rx_unnegotiated_offload_dropped,
                                        setup_guest_csum_tso4, teardown),
        cmocka_unit_test_setup_teardown(reset_turns_offloads_off,
                                        setup_guest_csum_tso4, teardown),
        cmocka_unit_test(open_missing_tap_is_enodev),
        cmocka_unit_test_setup_teardown(snapshot_net_sends_held_frame_once,
                                        setup_guest_csum_tso4, teardown),
        cmocka_unit_test_setup_teardown(restore_refuses_bad_net_state,
                                        setup_guest_csum_tso4, teardown),
    };
    return cmocka_run_group_tests_name("virtio_net", tests, NULL, NULL);
}
