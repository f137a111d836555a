/* virtio-console (virtio 1.2 §5.3) with one port: either the console port
 * (no MULTIPORT: the guest's /dev/hvc0), or a named generic port (MULTIPORT
 * with one port: the guest's /dev/vportNp0, named in
 * /sys/class/virtio-ports/vportNp0/name). Its back-end is a pair of host
 * fds (stdin/stdout, or one connected socket for both) driven from the
 * VMM's event loop.
 *
 * Why a generic port for bulk data: Linux's hvc layer writes a console
 * port in 2 KiB pieces and spins in put_chars until the host has used each
 * one (one notification and a full host round trip per 2 KiB), whereas a
 * generic port's write() queues up to 32 KiB per buffer and returns without
 * waiting (drivers/char/virtio_console.c, port_fops_write).
 *
 * Flow control, both ways, without dropping a byte: a guest buffer the host
 * fd cannot take yet stays pending (and the transmit queue is not consumed
 * further) until the fd is writable; host input is read only while the
 * guest has posted receive buffers, and is delivered as soon as it does.
 *
 * Snapshots go through the transport: virtio_mmio_save(&con->vdev, w), and
 * virtio_mmio_restore(&con->vdev, r) onto a console made as the saved one
 * was (the same kind, port 0 under the same name) with new back-end fds,
 * or none yet (virtio_console_connect gives them later). The port keeps
 * its handshake (no control message is sent twice, none owed is lost) and
 * whether the guest has it open; receive buffers the guest posted wait for
 * the new back-end's input; a transmit chain the old back-end had taken
 * part of goes on from where it stopped. */
#ifndef RUNVM_VIRTIO_CONSOLE_H
#define RUNVM_VIRTIO_CONSOLE_H

#include <linux/virtio_console.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "core/evloop.h"

#define VIRTIO_CONSOLE_RXQ 0 /* receiveq: host → guest */
#define VIRTIO_CONSOLE_TXQ 1 /* transmitq: guest → host */
/* With MULTIPORT (§5.3.2): port 0 keeps queues 0 and 1; these carry
 * struct virtio_console_control messages (§5.3.6.2). */
#define VIRTIO_CONSOLE_CTRL_RXQ      2 /* control receiveq: device → driver */
#define VIRTIO_CONSOLE_CTRL_TXQ      3 /* control transmitq: driver → device */
#define VIRTIO_CONSOLE_PORT_NAME_MAX 64
#define VIRTIO_CONSOLE_QUEUE_SIZE    256

struct virtio_console_side {
    int fd;
    int saved_flags; /* file status flags to restore (O_NONBLOCK) */
    bool polled;     /* registered with the event loop */
    uint32_t events; /* events asked for now */
};

struct virtio_console {
    struct virtio_dev vdev;
    struct evloop *loop;
    struct virtio_console_side in;  /* host input → guest (RX) */
    struct virtio_console_side out; /* guest output → host (TX) */
    bool in_eof;        /* host input ended or failed: nothing more to read */
    bool out_closed;    /* host output gone: guest output is discarded */
    bool out_is_socket; /* send with MSG_NOSIGNAL */
    bool want_input;    /* guest has RX buffers and input would block */
    bool tx_pending;    /* tx_elem popped, partly written */
    uint16_t tx_iov;    /* first iovec of tx_elem not fully written */
    /* After a restore: bytes of the next transmit chain the old back-end
     * already took (the chain held at the snapshot, popped again). */
    uint64_t tx_skip;
    /* MULTIPORT only: port 0's name, the control messages still to send
     * (VIRTIO_CONSOLE_CTRL_* bits) and whether the guest has it open. */
    bool multiport;
    char port_name[VIRTIO_CONSOLE_PORT_NAME_MAX];
    uint32_t ctrl_pending;
    bool guest_open;
    struct virtio_console_config config;
    struct virtq_elem rx_elem;
    struct virtq_elem tx_elem;
    struct virtq_elem ctrl_elem;
    uint64_t bytes_to_guest;
    uint64_t bytes_to_host;
};

/* Sets up a console whose guest input comes from in_fd and whose guest
 * output goes to out_fd (the same fd for a socket), or, with both -1, one
 * without a back-end yet (see virtio_console_connect). The fds are made
 * non-blocking (restored by virtio_console_free) and watched on loop; fds
 * epoll cannot watch (regular files, /dev/null) are read and written on
 * demand. The caller keeps ownership of the fds and must ignore SIGPIPE.
 * The device is then attached with con->vdev on the MMIO bus
 * (virtio_mmio_bus_ops) and notified with virtio_mmio_notify(&con->vdev,
 * q). 0 or -errno. */
int virtio_console_init(struct virtio_console *con, const struct guest_mem *mem,
                        struct evloop *loop, int in_fd, int out_fd,
                        virtio_irq_fn irq, void *irq_opaque)
    __attribute__((warn_unused_result));

/* As virtio_console_init, but port 0 is a generic port named port_name
 * (1 to VIRTIO_CONSOLE_PORT_NAME_MAX - 1 printable bytes) instead of the
 * console: the guest sees /dev/vportNp0, not /dev/hvc0. Host input waits
 * until the guest opens the port (the driver drops data for a closed
 * port). 0 or -errno (-EINVAL: bad name). */
int virtio_console_init_port(struct virtio_console *con,
                             const struct guest_mem *mem, struct evloop *loop,
                             int in_fd, int out_fd, const char *port_name,
                             virtio_irq_fn irq, void *irq_opaque)
    __attribute__((warn_unused_result));

/* Gives a console set up without a back-end its fds (e.g. once a client
 * connected to the socket runvm listens on). Guest output held until now
 * goes out first. Thread-safe. 0, -EBUSY if it has fds, or -errno. */
int virtio_console_connect(struct virtio_console *con, int in_fd, int out_fd)
    __attribute__((warn_unused_result));

/* Stops watching the fds, restores their flags, frees the transport. Call
 * from the event-loop thread once vCPUs are stopped. */
void virtio_console_free(struct virtio_console *con);

#endif
