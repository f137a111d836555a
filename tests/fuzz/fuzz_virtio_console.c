/* libFuzzer target: the virtio-console model (devices/virtio_console.c)
 * behind its virtio-mmio register file, driven by a hostile driver
 * (tests/fuzz/virtio_driver.h) and a host back-end the input controls.
 *
 * Byte 0 picks the device: bit 0 a named generic port (MULTIPORT, four
 * queues) instead of the console; bits 1-2 the back-end: 0 one socketpair
 * for both directions, 1 two pipes, 2 and 3 none until a CONNECT operation
 * (then a socketpair, or pipes). The back-end's buffers are small, so the
 * device meets a full and an empty fd often. The rest is operations
 * (virtio_driver.h); those the driver leaves to the target are the host's:
 * high nibble mod 6: 0 write bytes for the guest, 1 read what the guest
 * wrote, 2 deliver the event loop's ready events, 3 close the guest's
 * input (EOF), 4 stop reading the guest's output (EPIPE), 5 CONNECT.
 *
 * Besides the transport's invariants: every byte the host wrote is in the
 * guest or still in the fd, and at the end every byte the device says it
 * wrote to the host is there. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_console.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/pump.h"
#include "tests/fuzz/virtio_driver.h"

#define SMALL_BUF 4096 /* socket and pipe buffers: fill up quickly */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The host's side of the back-end and what went through it. */
struct host {
    int guest_in;  /* the device reads the guest's input here */
    int guest_out; /* and writes its output here (maybe the same fd) */
    int host_in;   /* the host writes the guest's input here */
    int host_out;  /* and reads its output here (maybe the same fd) */
    bool pipes;
    bool in_closed, out_closed;
    uint64_t written; /* bytes the host wrote for the guest */
    uint64_t read;    /* bytes of guest output the host read */
};

static void no_irq(void *opaque)
{
    (void)opaque;
}

static void small_socket(int fd)
{
    int n = SMALL_BUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

/* Makes the back-end's fds. 0 or -1. */
static int host_open(struct host *h, bool pipes)
{
    h->pipes = pipes;
    if (!pipes) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return -1;
        small_socket(sv[0]);
        small_socket(sv[1]);
        h->guest_in = h->guest_out = sv[0];
        h->host_in = h->host_out = sv[1];
    } else {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0)
            return -1;
        if (pipe2(out, O_CLOEXEC) < 0) {
            close(in[0]);
            close(in[1]);
            return -1;
        }
        fcntl(in[1], F_SETPIPE_SZ, SMALL_BUF);
        fcntl(out[1], F_SETPIPE_SZ, SMALL_BUF);
        h->guest_in = in[0];
        h->host_in = in[1];
        h->guest_out = out[1];
        h->host_out = out[0];
    }
    fcntl(h->host_in, F_SETFL, O_NONBLOCK);
    fcntl(h->host_out, F_SETFL, O_NONBLOCK);
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void host_close(struct host *h)
{
    if (h->guest_out != h->guest_in)
        close_fd(&h->guest_out);
    if (h->host_out != h->host_in)
        close_fd(&h->host_out);
    close_fd(&h->guest_in);
    close_fd(&h->host_in);
}

static void host_write(struct host *h, struct cursor *in)
{
    const uint8_t *data;
    size_t n = cursor_bytes(in, cursor_u8(in), &data);
    if (h->host_in < 0 || h->in_closed || n == 0)
        return;
    ssize_t w = write(h->host_in, data, n);
    if (w > 0)
        h->written += (uint64_t)w;
}

static void host_read(struct host *h, size_t max)
{
    uint8_t buf[SMALL_BUF];
    while (h->host_out >= 0 && !h->out_closed && max > 0) {
        ssize_t n =
            read(h->host_out, buf, max < sizeof(buf) ? max : sizeof(buf));
        if (n <= 0)
            return;
        h->read += (uint64_t)n;
        max -= (size_t)n;
    }
}

/* The guest's input ends: EOF once the fd is drained. */
static void host_end_input(struct host *h)
{
    if (h->host_in < 0 || h->in_closed)
        return;
    h->in_closed = true;
    if (h->pipes)
        close_fd(&h->host_in);
    else
        shutdown(h->host_in, SHUT_WR);
}

/* The host stops reading: the device's next write fails. */
static void host_end_output(struct host *h)
{
    if (h->host_out < 0 || h->out_closed)
        return;
    h->out_closed = true;
    if (h->pipes)
        close_fd(&h->host_out);
    else
        shutdown(h->host_out, SHUT_RD);
}

static void host_op(struct virtio_console *con, struct evloop *loop,
                    struct host *h, uint8_t op, struct cursor *in)
{
    switch ((op >> 4) % 6) {
    case 0: host_write(h, in); break;
    case 1: host_read(h, (size_t)cursor_u16(in) + 1); break;
    case 2: pump_ready(loop); break;
    case 3: host_end_input(h); break;
    case 4: host_end_output(h); break;
    case 5:
        if (h->guest_in >= 0 || host_open(h, h->pipes) < 0)
            break;
        check_that(virtio_console_connect(con, h->guest_in, h->guest_out) == 0,
                   "connecting a back-end failed");
        check_that(virtio_console_connect(con, h->guest_in, h->guest_out) ==
                       -EBUSY,
                   "a second back-end was taken");
        break;
    }
}

/* Bytes written into fd and not read from it yet. */
static uint64_t unread(int fd)
{
    int n = 0;
    if (fd < 0 || ioctl(fd, FIONREAD, &n) < 0)
        return 0;
    return (uint64_t)n;
}

static void check_input(struct virtio_console *con, struct host *h)
{
    if (h->guest_in >= 0)
        check_that(con->bytes_to_guest + unread(h->guest_in) == h->written,
                   "host input lost or made up on the way to the guest");
}

/* At the end: drains the guest's output. */
static void check_output(struct virtio_console *con, struct host *h)
{
    if (h->guest_in < 0 || h->out_closed)
        return;
    host_read(h, SIZE_MAX);
    check_that(con->bytes_to_host == h->read,
               "guest output counted but not delivered");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct evloop loop;
    static struct virtio_console con;
    if (loop.epfd == 0) {
        signal(SIGPIPE, SIG_IGN); /* virtio_console_init's contract */
        if (evloop_init(&loop) < 0)
            return 0;
    }
    struct guest_mem *mem = virtio_driver_ram();
    if (!mem || size < 1)
        return 0;
    struct cursor in;
    cursor_init(&in, data, size);
    uint8_t mode = cursor_u8(&in);
    unsigned int backend = (mode >> 1) & 3;
    struct host h = {-1, -1, -1, -1, .pipes = backend & 1};
    if (backend < 2 && host_open(&h, h.pipes) < 0)
        return 0;
    int ret = mode & 1 ? virtio_console_init_port(&con, mem, &loop, h.guest_in,
                                                  h.guest_out, "runvm.agent",
                                                  no_irq, NULL)
                       : virtio_console_init(&con, mem, &loop, h.guest_in,
                                             h.guest_out, no_irq, NULL);
    check_that(ret == 0, "setting up the console failed");

    struct virtio_driver d;
    virtio_driver_init(&d, &con.vdev, mem);
    while (!cursor_empty(&in)) {
        uint8_t op = cursor_u8(&in);
        if (op % 16 < VIRTIO_DRIVER_KINDS) {
            virtio_driver_step(&d, op, &in);
        } else {
            host_op(&con, &loop, &h, op, &in);
            virtio_driver_check(&d);
        }
        check_input(&con, &h);
    }
    check_output(&con, &h);
    virtio_console_free(&con);
    host_close(&h);
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        check_that(loop.handlers[i].fd == -1,
                   "the console left an fd on the event loop");
    return 0;
}
