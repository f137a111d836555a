/* virtio-net (virtio 1.2 §5.1) on a tap back-end: one RX/TX queue pair,
 * the 12-byte virtio_net_hdr (VERSION_1: num_buffers present) shared with
 * the tap through IFF_VNET_HDR, MAC in config space. Transmit offloads
 * (CSUM, HOST_TSO4/6) are offered: the tap checksums and segments what the
 * guest hands it, and a header asking for an offload the driver did not
 * negotiate is dropped. Receive offloads (GUEST_CSUM, GUEST_TSO4/6) are
 * offered too: the tap is told (TUNSETOFFLOAD) which ones the driver took,
 * so it hands over partly checksummed frames and TCP segments of up to
 * 64 KiB instead of MTU-sized frames, and the driver (no MRG_RXBUF: one
 * frame per buffer) posts buffers that big. A tap header that asks for
 * anything else is not passed on. Back-end I/O runs on the VMM's event
 * loop.
 *
 * Snapshots go through the transport (virtio_mmio_save and
 * virtio_mmio_restore on net->vdev), restored onto a card made as the
 * saved one was, on a newly opened tap: the tap is given the offloads the
 * driver took, a frame the old tap would not take yet is sent once, and
 * receive buffers the guest posted take the new tap's frames. */
#ifndef RUNVM_VIRTIO_NET_H
#define RUNVM_VIRTIO_NET_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "core/evloop.h"

#define VIRTIO_NET_RXQ        0
#define VIRTIO_NET_TXQ        1
#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_HDR_LEN    12 /* struct virtio_net_hdr_v1 */
_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN,
               "virtio_net_hdr_v1 is the 12-byte VERSION_1 header");
/* Device-specific features offered. */
#define VIRTIO_NET_FEATURES                                                    \
    ((1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_CSUM) |                \
     (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |     \
     (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |   \
     (1ULL << VIRTIO_NET_F_GUEST_TSO6))

struct virtio_net {
    struct virtio_dev vdev;
    struct evloop *loop;
    int tap_fd;
    bool polled;
    uint32_t events;
    bool want_rx;              /* guest has buffers and the tap had no frame */
    bool tx_pending;           /* tx_elem popped, tap would block */
    unsigned int tap_offloads; /* TUN_F_* the tap was last told */
    struct virtio_net_config config;
    struct virtq_elem rx_elem;
    struct virtq_elem tx_elem;
    /* tx_elem's frame as written to the tap: its checked header copy,
     * then the chain past the header. */
    struct virtio_net_hdr_v1 tx_hdr;
    struct iovec tx_iov[VIRTQ_MAX_IOV + 1];
    unsigned int tx_iovcnt;
    /* rx_elem as the tap fills it: the tap's header into rx_hdr, then the
     * frame into the chain past the header's bytes. */
    struct virtio_net_hdr_v1 rx_hdr;
    struct iovec rx_iov[VIRTQ_MAX_IOV + 1];
    uint64_t rx_frames, rx_dropped, tx_frames, tx_dropped;
    uint64_t rx_errors; /* tap reads that failed (the first one is logged) */
};

/* Opens the EXISTING tap interface `name` (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, 12-byte header, no offloads), non-blocking. Returns the fd
 * or -errno: -ENODEV when no such interface exists, -EINVAL/-EBUSY when it
 * is not a free tap, -EPERM/-EACCES without the right to open it. */
int virtio_net_open_tap(const char *name) __attribute__((warn_unused_result));

/* Sets up the device on tap_fd (from virtio_net_open_tap; the caller keeps
 * ownership) with the given MAC, and watches the tap on loop. 0 or
 * -errno. */
int virtio_net_init(struct virtio_net *net, const struct guest_mem *mem,
                    struct evloop *loop, int tap_fd, const uint8_t mac[6],
                    virtio_irq_fn irq, void *irq_opaque)
    __attribute__((warn_unused_result));

/* Stops watching the tap and frees the transport. */
void virtio_net_free(struct virtio_net *net);

#endif
