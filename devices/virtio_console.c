#include "devices/virtio_console.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static struct virtio_console *to_console(struct virtio_dev *dev)
{
    return dev->opaque;
}

/* Asks the event loop for exactly the events the device can act on now:
 * input only while the guest has buffers waiting, output only while a
 * chain is pending. One registration when both sides share an fd. */
static void update_watch(struct virtio_console *con)
{
    uint32_t in_ev = con->want_input && !con->in_eof ? EPOLLIN : 0;
    uint32_t out_ev = con->tx_pending && !con->out_closed ? EPOLLOUT : 0;
    if (con->in.fd == con->out.fd) {
        in_ev |= out_ev;
        out_ev = in_ev;
    }
    if (con->in.polled && con->in.events != in_ev) {
        if (evloop_mod(con->loop, con->in.fd, in_ev) == 0)
            con->in.events = in_ev;
    }
    if (con->out.polled && con->in.fd != con->out.fd &&
        con->out.events != out_ev) {
        if (evloop_mod(con->loop, con->out.fd, out_ev) == 0)
            con->out.events = out_ev;
    }
}

/* Host input → guest receive buffers, while both exist. */
static void console_rx(struct virtio_console *con)
{
    struct virtq *vq = virtio_mmio_queue(&con->vdev, VIRTIO_CONSOLE_RXQ);
    if (!vq || con->in_eof || con->in.fd < 0)
        return;
    /* The driver discards what reaches a generic port nobody has open
     * (in_intr → discard_port_data): hold input until it is opened. */
    if (con->multiport && !con->guest_open) {
        con->want_input = false;
        return;
    }
    struct virtq_elem *e = &con->rx_elem;
    bool pushed = false;
    con->want_input = false;
    for (;;) {
        int ret = virtq_pop(vq, e);
        if (ret == 0)
            break; /* no buffers: stop reading until the guest posts some */
        if (ret < 0) {
            virtio_mmio_fail(&con->vdev, "malformed receive queue");
            return;
        }
        if (e->out_num > 0 || e->in_len == 0) {
            virtio_mmio_fail(&con->vdev, "receive buffer not writable");
            return;
        }
        ssize_t n = readv(con->in.fd, &e->iov[0], e->in_num);
        if (n > 0) {
            virtq_push(vq, e, (uint64_t)n);
            con->bytes_to_guest += (uint64_t)n;
            pushed = true;
            continue;
        }
        virtq_unpop(vq);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            con->want_input = true;
            break;
        }
        if (n < 0)
            fprintf(stderr, "runvm: virtio-console: input: %s\n",
                    strerror(errno));
        con->in_eof = true; /* the guest sees no more input */
        break;
    }
    if (pushed)
        virtio_mmio_used(&con->vdev, VIRTIO_CONSOLE_RXQ);
}

/* The first n bytes of what is left of tx_elem went out: advances through
 * the iovecs we own (tx_elem is our copy). */
static void tx_advance(struct virtio_console *con, uint64_t n)
{
    struct virtq_elem *e = &con->tx_elem;
    while (n > 0 && con->tx_iov < e->out_num) {
        struct iovec *iov = &e->iov[con->tx_iov];
        if (n >= iov->iov_len) {
            n -= iov->iov_len;
            iov->iov_len = 0;
            con->tx_iov++;
        } else {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
            n = 0;
        }
    }
}

/* Bytes of tx_elem already written to the host. */
static uint64_t tx_written(const struct virtio_console *con)
{
    const struct virtq_elem *e = &con->tx_elem;
    uint64_t left = 0;
    for (unsigned int i = con->tx_iov; i < e->out_num; i++)
        left += e->iov[i].iov_len;
    return e->out_len - left;
}

/* Writes what is left of tx_elem. >0 done, 0 would block, <0 error. */
static int write_pending(struct virtio_console *con)
{
    struct virtq_elem *e = &con->tx_elem;
    while (con->tx_iov < e->out_num) {
        struct iovec *iov = &e->iov[con->tx_iov];
        int cnt = e->out_num - con->tx_iov;
        ssize_t n;
        if (iov->iov_len == 0) {
            con->tx_iov++;
            continue;
        }
        if (con->out_is_socket) {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = cnt};
            n = sendmsg(con->out.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            n = writev(con->out.fd, iov, cnt);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        con->bytes_to_host += (uint64_t)n;
        tx_advance(con, (uint64_t)n);
    }
    return 1;
}

/* Guest transmit buffers → host output, in order, one chain at a time. */
static void console_tx(struct virtio_console *con)
{
    struct virtq *vq = virtio_mmio_queue(&con->vdev, VIRTIO_CONSOLE_TXQ);
    if (!vq)
        return;
    bool pushed = false;
    for (;;) {
        if (!con->tx_pending) {
            int ret = virtq_pop(vq, &con->tx_elem);
            if (ret == 0)
                break;
            if (ret < 0) {
                virtio_mmio_fail(&con->vdev, "malformed transmit queue");
                return;
            }
            if (con->tx_elem.in_num > 0) {
                virtio_mmio_fail(&con->vdev,
                                 "transmit buffer is device-writable");
                return;
            }
            con->tx_pending = true;
            con->tx_iov = 0;
            /* The chain held at a snapshot, popped again: what the old
             * back-end took of it is not sent twice. */
            tx_advance(con, con->tx_skip);
            con->tx_skip = 0;
        }
        if (con->out.fd < 0)
            break; /* no back-end yet: hold the output, drop nothing */
        if (!con->out_closed) {
            int ret = write_pending(con);
            if (ret == 0)
                break; /* host not ready: keep the chain, stop consuming */
            if (ret < 0) {
                fprintf(stderr,
                        "runvm: virtio-console: output: %s; discarding "
                        "further guest output\n",
                        strerror(-ret));
                con->out_closed = true;
            }
        }
        virtq_push(vq, &con->tx_elem, 0);
        con->tx_pending = false;
        pushed = true;
    }
    if (pushed)
        virtio_mmio_used(&con->vdev, VIRTIO_CONSOLE_TXQ);
}

/* ---- MULTIPORT control queues (§5.3.6.2) ------------------------------ */

/* Control messages the device still owes the driver, sent in this order
 * as the driver posts control receive buffers. */
#define CTRL_PORT_ADD  0x1 /* after DEVICE_READY: port 0 exists */
#define CTRL_PORT_NAME 0x2 /* after PORT_READY: its name */
#define CTRL_PORT_OPEN 0x4 /* after PORT_READY: the host end is open */

static void ctrl_put(struct virtio_console_control *c, uint32_t id,
                     uint16_t event, uint16_t value)
{
    /* VERSION_1 devices are little-endian (§2.4). */
    c->id = htole32(id);
    c->event = htole16(event);
    c->value = htole16(value);
}

/* Sends the pending control messages that fit the driver's buffers. */
static void ctrl_send(struct virtio_console *con)
{
    struct virtq *vq = virtio_mmio_queue(&con->vdev, VIRTIO_CONSOLE_CTRL_RXQ);
    if (!vq)
        return;
    bool pushed = false;
    while (con->ctrl_pending) {
        struct virtio_console_control c;
        uint8_t msg[sizeof(c) + VIRTIO_CONSOLE_PORT_NAME_MAX];
        size_t len = sizeof(c);
        uint32_t bit;
        if (con->ctrl_pending & CTRL_PORT_ADD) {
            bit = CTRL_PORT_ADD;
            ctrl_put(&c, 0, VIRTIO_CONSOLE_PORT_ADD, 0);
        } else if (con->ctrl_pending & CTRL_PORT_NAME) {
            bit = CTRL_PORT_NAME;
            ctrl_put(&c, 0, VIRTIO_CONSOLE_PORT_NAME, 0);
            size_t n = strlen(con->port_name);
            memcpy(msg + sizeof(c), con->port_name, n);
            len += n;
        } else {
            bit = CTRL_PORT_OPEN;
            ctrl_put(&c, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
        }
        memcpy(msg, &c, sizeof(c));
        struct virtq_elem *e = &con->ctrl_elem;
        int ret = virtq_pop(vq, e);
        if (ret == 0)
            break; /* the rest goes when the driver posts buffers */
        if (ret < 0 || e->out_num > 0 || e->in_len < len) {
            virtio_mmio_fail(&con->vdev, "malformed control receive queue");
            return;
        }
        virtq_push(vq, e, virtq_elem_write(e, 0, msg, len));
        con->ctrl_pending &= ~bit;
        pushed = true;
    }
    if (pushed)
        virtio_mmio_used(&con->vdev, VIRTIO_CONSOLE_CTRL_RXQ);
}

/* Acts on one driver → device control message. Only port 0 exists; a
 * message about any other port is ignored. */
static void ctrl_handle(struct virtio_console *con,
                        const struct virtio_console_control *c)
{
    uint32_t id = le32toh(c->id);
    uint16_t event = le16toh(c->event), value = le16toh(c->value);
    switch (event) {
    case VIRTIO_CONSOLE_DEVICE_READY:
        if (value)
            con->ctrl_pending |= CTRL_PORT_ADD;
        break;
    case VIRTIO_CONSOLE_PORT_READY:
        /* A generic port (no CONSOLE_PORT): the driver makes it a
         * character device. The host end is always open: runvm holds its
         * back-end from start to end. */
        if (id == 0 && value)
            con->ctrl_pending |= CTRL_PORT_NAME | CTRL_PORT_OPEN;
        break;
    case VIRTIO_CONSOLE_PORT_OPEN:
        if (id == 0) {
            con->guest_open = value != 0;
            if (con->guest_open)
                console_rx(con); /* input held until now */
        }
        break;
    default: break; /* RESIZE and the like concern console ports only */
    }
}

static void ctrl_receive(struct virtio_console *con)
{
    struct virtq *vq = virtio_mmio_queue(&con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
    if (!vq)
        return;
    bool pushed = false;
    for (;;) {
        struct virtq_elem *e = &con->ctrl_elem;
        int ret = virtq_pop(vq, e);
        if (ret == 0)
            break;
        if (ret < 0 || e->in_num > 0) {
            virtio_mmio_fail(&con->vdev, "malformed control transmit queue");
            return;
        }
        struct virtio_console_control c;
        if (virtq_elem_read(e, 0, &c, sizeof(c)) == sizeof(c))
            ctrl_handle(con, &c);
        /* Handling it may have stopped the device (PORT_OPEN delivers
         * held input into a broken receive queue): no more, then, or the
         * port's state would outlive the reset that stopped it. */
        if (!virtio_mmio_live(&con->vdev))
            return;
        /* A short message is ignored, as the driver does with ours. */
        virtq_push(vq, e, 0);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_used(&con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
    ctrl_send(con);
}

/* A hung-up or failed fd stays "ready" forever, even with no events asked
 * for, so it is no longer watched: from then on reads return data or EOF
 * and writes fail at once, without blocking, and each pass finds out. */
static void side_unwatch(struct virtio_console *con,
                         struct virtio_console_side *side)
{
    if (side->polled)
        evloop_del(con->loop, side->fd);
    side->polled = false;
}

static void console_in_event(void *opaque, uint32_t events)
{
    struct virtio_console *con = opaque;
    virtio_mmio_lock(&con->vdev);
    if (events & (EPOLLHUP | EPOLLERR)) {
        side_unwatch(con, &con->in);
        if (con->out.fd == con->in.fd)
            con->out.polled = false;
    }
    if (con->out.fd == con->in.fd)
        console_tx(con);
    console_rx(con);
    update_watch(con);
    virtio_mmio_unlock(&con->vdev);
}

static void console_out_event(void *opaque, uint32_t events)
{
    struct virtio_console *con = opaque;
    virtio_mmio_lock(&con->vdev);
    if (events & (EPOLLHUP | EPOLLERR))
        side_unwatch(con, &con->out);
    console_tx(con);
    update_watch(con);
    virtio_mmio_unlock(&con->vdev);
}

static void console_notify(struct virtio_dev *dev, unsigned int q)
{
    struct virtio_console *con = to_console(dev);
    if (q == VIRTIO_CONSOLE_RXQ)
        console_rx(con);
    else if (q == VIRTIO_CONSOLE_TXQ)
        console_tx(con);
    else if (q == VIRTIO_CONSOLE_CTRL_RXQ)
        ctrl_send(con);
    else if (q == VIRTIO_CONSOLE_CTRL_TXQ)
        ctrl_receive(con);
    update_watch(con);
}

static int console_activate(struct virtio_dev *dev)
{
    struct virtio_console *con = to_console(dev);
    if (con->multiport)
        ctrl_receive(con); /* DEVICE_READY may already be queued */
    console_tx(con);
    console_rx(con);
    update_watch(con);
    return 0;
}

static void console_reset(struct virtio_dev *dev)
{
    struct virtio_console *con = to_console(dev);
    /* Popped chains belong to the old rings; forget them. */
    con->tx_pending = false;
    con->tx_skip = 0;
    con->want_input = false;
    /* The driver starts the port handshake again after a reset. */
    con->ctrl_pending = 0;
    con->guest_open = false;
    update_watch(con);
}

/* ---- snapshots --------------------------------------------------------- */

/* Layout of the console's saved state, after the transport's. */
#define CONSOLE_STATE_VERSION 1
#define CTRL_ALL              (CTRL_PORT_ADD | CTRL_PORT_NAME | CTRL_PORT_OPEN)

/* Only a transmit chain waits for the back-end between calls: receive
 * chains are pushed or given back (virtq_unpop) at once, control chains
 * are pushed as soon as they are popped. */
static unsigned int console_held_chains(struct virtio_dev *dev, unsigned int q)
{
    struct virtio_console *con = to_console(dev);
    return q == VIRTIO_CONSOLE_TXQ && con->tx_pending ? 1 : 0;
}

/* The port as the driver knows it: which control messages it still owes
 * (what it sent is in the control queue's ring positions), whether the
 * guest has the port open, and how much of the held transmit chain the
 * back-end already took. The host end is open from start to end: runvm
 * holds a back-end, or takes one with virtio_console_connect. Whether the
 * old back-end reached EOF or failed is its own: the new one starts
 * afresh. */
static void console_save(struct virtio_dev *dev, struct state_w *w)
{
    struct virtio_console *con = to_console(dev);
    state_put_u32(w, CONSOLE_STATE_VERSION);
    state_put_u8(w, con->multiport);
    size_t n = con->multiport ? strlen(con->port_name) : 0;
    state_put_u8(w, (uint8_t)n);
    state_put_bytes(w, con->port_name, n);
    state_put_u32(w, con->ctrl_pending);
    state_put_u8(w, con->guest_open);
    /* A chain not yet popped again after a restore keeps its count; a
     * transmit queue the driver took away (QueueReady 0) took its chain. */
    uint64_t skip = con->tx_pending ? tx_written(con) : con->tx_skip;
    state_put_u64(w, dev->queues[VIRTIO_CONSOLE_TXQ].ready ? skip : 0);
}

static int console_restore(struct virtio_dev *dev, struct state_r *r)
{
    struct virtio_console *con = to_console(dev);
    if (state_get_u32(r) != CONSOLE_STATE_VERSION)
        state_r_fail(r);
    /* The same kind of console, port 0 under the same name: the machine
     * is made as it was. */
    if (state_get_u8(r) != con->multiport)
        state_r_fail(r);
    size_t n = state_get_u8(r);
    char name[VIRTIO_CONSOLE_PORT_NAME_MAX] = {0};
    if (n >= sizeof(name))
        state_r_fail(r);
    else
        state_get_bytes(r, name, n);
    const char *want = con->multiport ? con->port_name : "";
    if (n != strlen(want) || memcmp(name, want, n) != 0)
        state_r_fail(r);
    uint32_t ctrl_pending = state_get_u32(r);
    uint8_t guest_open = state_get_u8(r);
    uint64_t tx_skip = state_get_u64(r);
    /* The port's state exists only while the driver is live on a
     * MULTIPORT device (a reset forgets it), a held chain only on a ready
     * transmit queue. */
    bool live = virtio_mmio_live(dev);
    if (state_r_done(r) < 0 || (ctrl_pending & ~(uint32_t)CTRL_ALL) ||
        guest_open > 1 ||
        ((ctrl_pending || guest_open) && (!con->multiport || !live)) ||
        (tx_skip && (!live || !dev->queues[VIRTIO_CONSOLE_TXQ].ready))) {
        state_r_fail(r);
        return -EBADMSG;
    }
    con->ctrl_pending = ctrl_pending;
    con->guest_open = guest_open;
    con->tx_skip = tx_skip;
    return 0;
}

static const struct virtio_dev_ops console_ops = {
    .name = "virtio-console",
    .device_id = 3, /* §5: console */
    .num_queues = 2,
    .queue_max = VIRTIO_CONSOLE_QUEUE_SIZE,
    .activate = console_activate,
    .queue_notify = console_notify,
    .reset = console_reset,
    .held_chains = console_held_chains,
    .save = console_save,
    .restore = console_restore,
};

/* MULTIPORT with max_nr_ports 1: port 0's two queues and the control
 * pair. */
static const struct virtio_dev_ops console_multiport_ops = {
    .name = "virtio-console",
    .device_id = 3,
    .num_queues = 4,
    .queue_max = VIRTIO_CONSOLE_QUEUE_SIZE,
    .activate = console_activate,
    .queue_notify = console_notify,
    .reset = console_reset,
    .held_chains = console_held_chains,
    .save = console_save,
    .restore = console_restore,
};

/* Makes fd non-blocking and registers it (with no events yet). An fd epoll
 * refuses (EPERM: a regular file) is used unwatched: it never blocks. */
static int side_open(struct virtio_console *con,
                     struct virtio_console_side *side, int fd, evloop_cb cb)
{
    side->fd = fd;
    side->saved_flags = fcntl(fd, F_GETFL);
    if (side->saved_flags < 0)
        return -errno;
    if (fcntl(fd, F_SETFL, side->saved_flags | O_NONBLOCK) < 0)
        return -errno;
    if (!cb)
        return 0;
    int ret = evloop_add(con->loop, fd, 0, cb, con);
    if (ret == -EPERM)
        return 0;
    if (ret < 0) {
        fcntl(fd, F_SETFL, side->saved_flags);
        side->saved_flags = -1;
        return ret;
    }
    side->polled = true;
    return 0;
}

static void side_close(struct virtio_console *con,
                       struct virtio_console_side *side)
{
    side_unwatch(con, side);
    if (side->saved_flags >= 0)
        fcntl(side->fd, F_SETFL, side->saved_flags);
    side->saved_flags = -1;
}

static int console_init(struct virtio_console *con, const struct guest_mem *mem,
                        struct evloop *loop, int in_fd, int out_fd,
                        const char *port_name, virtio_irq_fn irq,
                        void *irq_opaque)
{
    memset(con, 0, sizeof(*con));
    con->loop = loop;
    con->in.fd = con->out.fd = -1;
    con->in.saved_flags = con->out.saved_flags = -1;
    if ((in_fd < 0) != (out_fd < 0))
        return -EBADF;
    uint64_t features = VIRTIO_MMIO_RING_FEATURES;
    const struct virtio_dev_ops *ops = &console_ops;
    if (port_name) {
        size_t n = strlen(port_name);
        if (n == 0 || n >= sizeof(con->port_name))
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)port_name[i] <= ' ' ||
                (unsigned char)port_name[i] >= 0x7f)
                return -EINVAL;
        memcpy(con->port_name, port_name, n + 1);
        con->multiport = true;
        con->config.max_nr_ports = htole32(1);
        features |= 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
        ops = &console_multiport_ops;
    }
    int ret = virtio_mmio_init(&con->vdev, ops, con, mem, features,
                               (uint8_t *)&con->config, sizeof(con->config),
                               irq, irq_opaque);
    if (ret < 0)
        return ret;
    if (in_fd < 0)
        return 0;
    ret = virtio_console_connect(con, in_fd, out_fd);
    if (ret < 0)
        virtio_mmio_free(&con->vdev);
    return ret;
}

int virtio_console_init(struct virtio_console *con, const struct guest_mem *mem,
                        struct evloop *loop, int in_fd, int out_fd,
                        virtio_irq_fn irq, void *irq_opaque)
{
    return console_init(con, mem, loop, in_fd, out_fd, NULL, irq, irq_opaque);
}

int virtio_console_init_port(struct virtio_console *con,
                             const struct guest_mem *mem, struct evloop *loop,
                             int in_fd, int out_fd, const char *port_name,
                             virtio_irq_fn irq, void *irq_opaque)
{
    if (!port_name)
        return -EINVAL;
    return console_init(con, mem, loop, in_fd, out_fd, port_name, irq,
                        irq_opaque);
}

int virtio_console_connect(struct virtio_console *con, int in_fd, int out_fd)
{
    if (in_fd < 0 || out_fd < 0)
        return -EBADF;
    virtio_mmio_lock(&con->vdev);
    int ret = -EBUSY;
    if (con->in.fd >= 0)
        goto out;
    struct stat st;
    con->out_is_socket = fstat(out_fd, &st) == 0 && S_ISSOCK(st.st_mode);
    ret = side_open(con, &con->in, in_fd, console_in_event);
    if (ret < 0)
        goto out_reset;
    ret = side_open(con, &con->out, out_fd,
                    out_fd != in_fd ? console_out_event : NULL);
    if (ret < 0) {
        side_close(con, &con->in);
        goto out_reset;
    }
    if (out_fd == in_fd)
        con->out.polled = con->in.polled;
    con->in_eof = con->out_closed = false;
    /* Output held while unconnected, and input the guest waits for. */
    console_tx(con);
    console_rx(con);
    update_watch(con);
    goto out;

out_reset:
    con->in.fd = con->out.fd = -1;
out:
    virtio_mmio_unlock(&con->vdev);
    return ret;
}

void virtio_console_free(struct virtio_console *con)
{
    if (con->out.fd >= 0 && con->out.fd != con->in.fd)
        side_close(con, &con->out);
    if (con->in.fd >= 0)
        side_close(con, &con->in);
    virtio_mmio_free(&con->vdev);
}
