#include "devices/virtio_net.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

int virtio_net_open_tap(const char *name)
{
    if (!name || !*name || strlen(name) >= IFNAMSIZ)
        return -EINVAL;
    /* TUNSETIFF would create a missing tap (given CAP_NET_ADMIN); runvm
     * only attaches to one that exists, so ask first. */
    if (if_nametoindex(name) == 0)
        return -ENODEV;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strlen(name));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    int hdr_len = VIRTIO_NET_HDR_LEN;
    int ret = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
        ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
        ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        ret = -errno;
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

static struct virtio_net *to_net(struct virtio_dev *dev)
{
    return dev->opaque;
}

/* Points dst at src[0, n) past its first `skip` bytes, however they are
 * split. Returns the entries written (at most n). */
static unsigned int iov_after(struct iovec *dst, const struct iovec *src,
                              unsigned int n, size_t skip)
{
    unsigned int out = 0;
    for (unsigned int i = 0; i < n; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        dst[out].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[out].iov_len = src[i].iov_len - skip;
        out++;
        skip = 0;
    }
    return out;
}

static void update_watch(struct virtio_net *net)
{
    uint32_t ev =
        (net->want_rx ? EPOLLIN : 0) | (net->tx_pending ? EPOLLOUT : 0);
    if (net->polled && ev != net->events &&
        evloop_mod(net->loop, net->tap_fd, ev) == 0)
        net->events = ev;
}

/* The tap offloads (TUN_F_*) matching what the driver negotiated. TSO
 * without GUEST_CSUM is not a valid negotiation (§5.1.3.1) and the tap
 * refuses it too, so it is not asked for. */
static unsigned int wanted_offloads(const struct virtio_dev *dev)
{
    if (!virtio_mmio_has_feature(dev, VIRTIO_NET_F_GUEST_CSUM))
        return 0;
    unsigned int off = TUN_F_CSUM;
    if (virtio_mmio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO4))
        off |= TUN_F_TSO4;
    if (virtio_mmio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO6))
        off |= TUN_F_TSO6;
    return off;
}

static int set_tap_offloads(struct virtio_net *net, unsigned int off)
{
    if (off == net->tap_offloads)
        return 0;
    if (ioctl(net->tap_fd, TUNSETOFFLOAD, (unsigned long)off) < 0) {
        int ret = -errno;
        fprintf(stderr, "runvm: virtio-net: tap offloads 0x%x: %s\n", off,
                strerror(-ret));
        return ret;
    }
    net->tap_offloads = off;
    return 0;
}

/* §5.1.6.4.1: the header of a received frame may ask only for what the
 * driver negotiated. The tap follows TUNSETOFFLOAD; this is the check
 * that a frame the driver cannot take never reaches it. Called with
 * offloads on, which always include GUEST_CSUM's flags. */
static bool rx_hdr_ok(const struct virtio_net *net,
                      const struct virtio_net_hdr_v1 *h)
{
    if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
        return false;
    switch (h->gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE: return true;
    case VIRTIO_NET_HDR_GSO_TCPV4: return net->tap_offloads & TUN_F_TSO4;
    case VIRTIO_NET_HDR_GSO_TCPV6: return net->tap_offloads & TUN_F_TSO6;
    default: return false; /* UDP, ECN: not offered */
    }
}

/* Tap frames → guest receive buffers, one frame per chain (no
 * MRG_RXBUF), while both exist. */
static void net_rx(struct virtio_net *net)
{
    struct virtq *vq = virtio_mmio_queue(&net->vdev, VIRTIO_NET_RXQ);
    if (!vq)
        return;
    struct virtq_elem *e = &net->rx_elem;
    bool pushed = false;
    net->want_rx = false;
    for (;;) {
        int ret = virtq_pop(vq, e);
        if (ret == 0)
            break; /* no buffers: frames wait in the tap's queue */
        if (ret < 0) {
            virtio_mmio_fail(&net->vdev, "malformed receive queue");
            return;
        }
        if (e->out_num > 0 || e->in_len < VIRTIO_NET_HDR_LEN) {
            virtio_mmio_fail(&net->vdev,
                             "receive buffer not writable or too small");
            return;
        }
        /* The tap's header into our copy, the frame into the chain past
         * the header's bytes: what is checked is what the guest cannot
         * change under us. */
        net->rx_iov[0].iov_base = &net->rx_hdr;
        net->rx_iov[0].iov_len = sizeof(net->rx_hdr);
        unsigned int cnt = 1 + iov_after(&net->rx_iov[1], e->iov, e->in_num,
                                         sizeof(net->rx_hdr));
        if (cnt > IOV_MAX) {
            virtq_unpop(vq);
            virtio_mmio_fail(&net->vdev, "receive chain longer than "
                                         "readv takes (IOV_MAX)");
            return;
        }
        ssize_t n = readv(net->tap_fd, net->rx_iov, (int)cnt);
        if (n < 0) {
            virtq_unpop(vq);
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                net->want_rx = true;
            else if (net->rx_errors++ == 0) /* once: not per kick */
                fprintf(stderr,
                        "runvm: virtio-net: tap read: %s (further "
                        "errors counted, not shown)\n",
                        strerror(errno));
            break;
        }
        /* With offloads on, the driver gets the tap's header, checked;
         * without, a plain one of ours: the tap marks DATA_VALID on a
         * frame a NIC verified even then, and §5.1.6.4.1 wants flags zero
         * without GUEST_CSUM. Without MRG_RXBUF a frame fills exactly one
         * buffer: num_buffers is 1 (the tap leaves those bytes alone). */
        struct virtio_net_hdr_v1 hdr = {0};
        if (net->tap_offloads) {
            if ((size_t)n < sizeof(hdr) || !rx_hdr_ok(net, &net->rx_hdr)) {
                /* The frame is gone; the buffer goes back for the next. */
                virtq_unpop(vq);
                net->rx_dropped++;
                continue;
            }
            hdr = net->rx_hdr;
        }
        hdr.num_buffers = 1;
        virtq_elem_write(e, 0, &hdr, sizeof(hdr));
        virtq_push(vq, e, (uint64_t)n);
        net->rx_frames++;
        pushed = true;
    }
    if (pushed)
        virtio_mmio_used(&net->vdev, VIRTIO_NET_RXQ);
}

/* §5.1.6.2: a transmit header asks only for offloads the driver
 * negotiated (DATA_VALID and RSC_INFO are the device's to set). The tap
 * would honour whatever it is given, so anything else is refused. */
static bool tx_hdr_ok(const struct virtio_net *net,
                      const struct virtio_net_hdr_v1 *h)
{
    const struct virtio_dev *dev = &net->vdev;
    if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
        return false;
    if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        !virtio_mmio_has_feature(dev, VIRTIO_NET_F_CSUM))
        return false;
    switch (h->gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE: return true;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        return virtio_mmio_has_feature(dev, VIRTIO_NET_F_HOST_TSO4);
    case VIRTIO_NET_HDR_GSO_TCPV6:
        return virtio_mmio_has_feature(dev, VIRTIO_NET_F_HOST_TSO6);
    default: return false; /* UDP, ECN: not offered */
    }
}

/* Copies the chain's header once into tx_hdr, checks it, and points
 * tx_iov at that copy followed by the frame (the chain past its first
 * VIRTIO_NET_HDR_LEN bytes, however the driver split it). */
static bool tx_prepare(struct virtio_net *net, const struct virtq_elem *e)
{
    if (virtq_elem_read(e, 0, &net->tx_hdr, sizeof(net->tx_hdr)) !=
            sizeof(net->tx_hdr) ||
        !tx_hdr_ok(net, &net->tx_hdr))
        return false;
    net->tx_iov[0].iov_base = &net->tx_hdr;
    net->tx_iov[0].iov_len = sizeof(net->tx_hdr);
    net->tx_iovcnt =
        1 + iov_after(&net->tx_iov[1], e->iov, e->out_num, sizeof(net->tx_hdr));
    return net->tx_iovcnt <= IOV_MAX; /* longer: writev cannot take it */
}

/* Guest transmit chains → tap, one frame each. */
static void net_tx(struct virtio_net *net)
{
    struct virtq *vq = virtio_mmio_queue(&net->vdev, VIRTIO_NET_TXQ);
    if (!vq)
        return;
    struct virtq_elem *e = &net->tx_elem;
    bool pushed = false;
    for (;;) {
        if (!net->tx_pending) {
            int ret = virtq_pop(vq, e);
            if (ret == 0)
                break;
            if (ret < 0) {
                virtio_mmio_fail(&net->vdev, "malformed transmit queue");
                return;
            }
            if (e->in_num > 0 || e->out_len < VIRTIO_NET_HDR_LEN) {
                virtio_mmio_fail(&net->vdev,
                                 "transmit buffer writable or too small");
                return;
            }
            if (!tx_prepare(net, e)) {
                net->tx_dropped++;
                virtq_push(vq, e, 0);
                pushed = true;
                continue;
            }
            net->tx_pending = true;
        }
        ssize_t n = writev(net->tap_fd, net->tx_iov, (int)net->tx_iovcnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break; /* keep the frame; EPOLLOUT resumes */
        if (n < 0)
            net->tx_dropped++; /* a frame the tap refuses: the guest's */
        else
            net->tx_frames++;
        virtq_push(vq, e, 0);
        net->tx_pending = false;
        pushed = true;
    }
    if (pushed)
        virtio_mmio_used(&net->vdev, VIRTIO_NET_TXQ);
}

static void net_event(void *opaque, uint32_t events)
{
    struct virtio_net *net = opaque;
    virtio_mmio_lock(&net->vdev);
    if (events & (EPOLLHUP | EPOLLERR)) {
        /* The tap went away under us (deleted interface). */
        fprintf(stderr, "runvm: virtio-net: tap hung up; network stopped\n");
        evloop_del(net->loop, net->tap_fd);
        net->polled = false;
    } else {
        if (events & EPOLLOUT)
            net_tx(net);
        if (events & EPOLLIN)
            net_rx(net);
        update_watch(net);
    }
    virtio_mmio_unlock(&net->vdev);
}

static void net_notify(struct virtio_dev *dev, unsigned int q)
{
    struct virtio_net *net = to_net(dev);
    if (q == VIRTIO_NET_RXQ)
        net_rx(net);
    else if (q == VIRTIO_NET_TXQ)
        net_tx(net);
    update_watch(net);
}

static int net_activate(struct virtio_dev *dev)
{
    struct virtio_net *net = to_net(dev);
    int ret = set_tap_offloads(net, wanted_offloads(dev));
    if (ret < 0)
        return ret;
    net_tx(net);
    net_rx(net);
    update_watch(net);
    return 0;
}

static void net_reset(struct virtio_dev *dev)
{
    struct virtio_net *net = to_net(dev);
    net->tx_pending = false;
    net->want_rx = false;
    /* The next driver may take fewer offloads: none until it says. */
    (void)set_tap_offloads(net, 0);
    update_watch(net);
}

/* ---- snapshots --------------------------------------------------------- */

/* Layout of the card's saved state, after the transport's. */
#define NET_STATE_VERSION 1

/* A transmit chain the tap would not take yet is the one chain held
 * between calls. A tap takes a frame whole or not at all (one write, one
 * frame), so none of it went out, and popping it again sends it once.
 * Receive chains are pushed or given back at once. */
static unsigned int net_held_chains(struct virtio_dev *dev, unsigned int q)
{
    struct virtio_net *net = to_net(dev);
    return q == VIRTIO_NET_TXQ && net->tx_pending ? 1 : 0;
}

/* The card has nothing the driver sees beyond the transport's state (MAC
 * and features included): the offloads the tap was told follow from the
 * features the driver took, and the counters are the old VMM's. */
static void net_save(struct virtio_dev *dev, struct state_w *w)
{
    (void)dev;
    state_put_u32(w, NET_STATE_VERSION);
}

static int net_restore(struct virtio_dev *dev, struct state_r *r)
{
    struct virtio_net *net = to_net(dev);
    if (state_get_u32(r) != NET_STATE_VERSION || state_r_done(r) < 0) {
        state_r_fail(r);
        return -EBADMSG;
    }
    /* The new tap starts without offloads: tell it what activate told the
     * old one. */
    return virtio_mmio_live(dev) ? set_tap_offloads(net, wanted_offloads(dev))
                                 : 0;
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = 1, /* §5: network card */
    .num_queues = 2,
    .queue_max = VIRTIO_NET_QUEUE_SIZE,
    .activate = net_activate,
    .queue_notify = net_notify,
    .reset = net_reset,
    .held_chains = net_held_chains,
    .save = net_save,
    .restore = net_restore,
};

int virtio_net_init(struct virtio_net *net, const struct guest_mem *mem,
                    struct evloop *loop, int tap_fd, const uint8_t mac[6],
                    virtio_irq_fn irq, void *irq_opaque)
{
    memset(net, 0, sizeof(*net));
    net->loop = loop;
    net->tap_fd = tap_fd;
    int flags = fcntl(tap_fd, F_GETFL);
    if (flags < 0 || fcntl(tap_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    memcpy(net->config.mac, mac, 6);
    /* The config fields up to mtu; only mac is meaningful (F_MAC). */
    uint32_t config_size = offsetof(struct virtio_net_config, speed);
    int ret =
        virtio_mmio_init(&net->vdev, &net_ops, net, mem,
                         VIRTIO_NET_FEATURES | VIRTIO_MMIO_RING_FEATURES,
                         (uint8_t *)&net->config, config_size, irq, irq_opaque);
    if (ret < 0)
        return ret;
    ret = evloop_add(loop, tap_fd, 0, net_event, net);
    if (ret < 0) {
        virtio_mmio_free(&net->vdev);
        return ret;
    }
    net->polled = true;
    return 0;
}

void virtio_net_free(struct virtio_net *net)
{
    if (net->polled)
        evloop_del(net->loop, net->tap_fd);
    net->polled = false;
    virtio_mmio_free(&net->vdev);
}
