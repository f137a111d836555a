/* libFuzzer target: the virtio-net model (devices/virtio_net.c) behind its
 * virtio-mmio register file, driven by a hostile driver
 * (tests/fuzz/virtio_driver.h), with a datagram socketpair as the tap (as
 * tests/unit/test_virtio_net.c has it: one read, one frame).
 *
 * Byte 0: bit 0 makes the tap refuse TUNSETOFFLOAD (the socket has none;
 * ioctl is wrapped, -Wl,--wrap=ioctl). The rest is operations
 * (virtio_driver.h); those the driver leaves to the target are the tap's:
 * high nibble mod 4: 0 a frame from the network (u16 length, bytes: the
 * 12-byte vnet header the tap hands over, then the frame), 1 read what the
 * guest sent, 2 deliver the event loop's ready events, 3 flip whether
 * TUNSETOFFLOAD fails.
 *
 * Besides the transport's invariants: every frame reaching the tap has a
 * header asking only for offloads the driver negotiated (§5.1.6.2), and
 * the device counts exactly the frames the tap got. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_net.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/pump.h"
#include "tests/fuzz/virtio_driver.h"

#define SMALL_BUF 8192 /* the fake tap's buffers: fill up quickly */
#define MAX_FRAME 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool offload_fails;

int __real_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (request == TUNSETOFFLOAD) {
        unsigned long off = (unsigned long)arg;
        check_that(
            !(off & ~(unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)),
            "the tap was asked for an offload never offered");
        check_that(!(off & (TUN_F_TSO4 | TUN_F_TSO6)) || (off & TUN_F_CSUM),
                   "TSO asked of the tap without checksum offload");
        if (offload_fails) {
            errno = EINVAL;
            return -1;
        }
        return 0;
    }
    return __real_ioctl(fd, request, arg);
}

/* The network behind the tap and what went through it. */
struct network {
    int fd; /* the socketpair's other end */
    uint64_t sent, received;
    uint64_t features; /* every feature set negotiated since the last read */
};

static void no_irq(void *opaque)
{
    (void)opaque;
}

static uint64_t negotiated(const struct virtio_dev *dev)
{
    return dev->driver_features & dev->device_features;
}

static void network_send(struct network *n, struct cursor *in)
{
    uint8_t frame[MAX_FRAME];
    size_t len = cursor_u16(in) % MAX_FRAME;
    const uint8_t *data;
    size_t got = cursor_bytes(in, len, &data);
    memcpy(frame, data, got);
    memset(frame + got, 0, len - got);
    if (send(n->fd, frame, len, MSG_DONTWAIT) >= 0)
        n->sent++;
}

/* Reads every frame the guest sent, checking each one's header. */
static void network_read(struct network *n, const struct virtio_dev *dev)
{
    uint8_t frame[1 << 16];
    ssize_t len;
    while ((len = recv(n->fd, frame, sizeof(frame), MSG_DONTWAIT)) >= 0) {
        n->received++;
        struct virtio_net_hdr_v1 h;
        check_that(len >= (ssize_t)sizeof(h), "a frame without its header");
        memcpy(&h, frame, sizeof(h));
        uint64_t f = n->features;
        check_that(!(h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM),
                   "a header flag only the device may set reached the tap");
        check_that(!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
                       (f & (1ULL << VIRTIO_NET_F_CSUM)),
                   "NEEDS_CSUM reached the tap without CSUM negotiated");
        switch (h.gso_type) {
        case VIRTIO_NET_HDR_GSO_NONE: break;
        case VIRTIO_NET_HDR_GSO_TCPV4:
            check_that(f & (1ULL << VIRTIO_NET_F_HOST_TSO4),
                       "TCPv4 GSO reached the tap without HOST_TSO4");
            break;
        case VIRTIO_NET_HDR_GSO_TCPV6:
            check_that(f & (1ULL << VIRTIO_NET_F_HOST_TSO6),
                       "TCPv6 GSO reached the tap without HOST_TSO6");
            break;
        default: check_that(false, "a GSO type never offered reached the tap");
        }
    }
    n->features = negotiated(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    static struct evloop loop;
    static struct virtio_net net;
    if (loop.epfd == 0 && evloop_init(&loop) < 0)
        return 0;
    struct guest_mem *mem = virtio_driver_ram();
    if (!mem || size < 1)
        return 0;
    struct cursor in;
    cursor_init(&in, data, size);
    offload_fails = cursor_u8(&in) & 1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    for (int i = 0; i < 2; i++) {
        int n = SMALL_BUF;
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
    }
    check_that(virtio_net_init(&net, mem, &loop, sv[0], mac, no_irq, NULL) == 0,
               "setting up the device failed");
    struct network n = {.fd = sv[1]};

    struct virtio_driver d;
    virtio_driver_init(&d, &net.vdev, mem);
    while (!cursor_empty(&in)) {
        uint8_t op = cursor_u8(&in);
        if (op % 16 < VIRTIO_DRIVER_KINDS) {
            virtio_driver_step(&d, op, &in);
        } else {
            switch ((op >> 4) % 4) {
            case 0: network_send(&n, &in); break;
            case 1: network_read(&n, &net.vdev); break;
            case 2: pump_ready(&loop); break;
            case 3: offload_fails = !offload_fails; break;
            }
            virtio_driver_check(&d);
        }
        n.features |= negotiated(&net.vdev);
        check_that(net.rx_frames + net.rx_dropped <= n.sent,
                   "more frames given to the guest than the tap had");
    }
    network_read(&n, &net.vdev);
    check_that(n.received == net.tx_frames,
               "frames counted as sent that the tap never got");
    virtio_net_free(&net);
    close(sv[0]);
    close(sv[1]);
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        check_that(loop.handlers[i].fd == -1,
                   "the device left its tap on the event loop");
    return 0;
}
