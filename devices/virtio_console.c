#include "devices/virtio_console.h"

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
        /* Advance through the iovecs we own (tx_elem is our copy). */
        while (n > 0) {
            if ((size_t)n >= iov->iov_len) {
                n -= (ssize_t)iov->iov_len;
                iov->iov_len = 0;
                con->tx_iov++;
                iov++;
            } else {
                iov->iov_base = (uint8_t *)iov->iov_base + n;
                iov->iov_len -= (size_t)n;
                n = 0;
            }
        }
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
    else
        console_tx(con);
    update_watch(con);
}

static int console_activate(struct virtio_dev *dev)
{
    struct virtio_console *con = to_console(dev);
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
    con->want_input = false;
    update_watch(con);
}

static const struct virtio_dev_ops console_ops = {
    .name = "virtio-console",
    .device_id = 3, /* §5: console */
    .num_queues = 2,
    .queue_max = VIRTIO_CONSOLE_QUEUE_SIZE,
    .activate = console_activate,
    .queue_notify = console_notify,
    .reset = console_reset,
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

int virtio_console_init(struct virtio_console *con,
                        const struct guest_mem *mem, struct evloop *loop,
                        int in_fd, int out_fd, virtio_irq_fn irq,
                        void *irq_opaque)
{
    memset(con, 0, sizeof(*con));
    con->loop = loop;
    con->in.fd = con->out.fd = -1;
    con->in.saved_flags = con->out.saved_flags = -1;
    if ((in_fd < 0) != (out_fd < 0))
        return -EBADF;
    int ret = virtio_mmio_init(&con->vdev, &console_ops, con, mem,
                               VIRTIO_MMIO_RING_FEATURES,
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
