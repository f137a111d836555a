/* libFuzzer target: every device's restore from a snapshot, fed bytes it
 * must check (they come from a file), then the restored device's register
 * file poked: the virtio-mmio transport with the console, the agent port
 * and the net card behind it, the 8250 UART, the i8042.
 *
 * Byte 0 picks the device, mod 5: 0 the UART, 1 the i8042, 2 a console
 * (no MULTIPORT), 3 the agent port (MULTIPORT, "runvm.agent"), 4 a net card
 * (its tap a datagram socketpair, TUNSETOFFLOAD answered by the wrapped
 * ioctl). The consoles' back-end is a socketpair, one fd for both ways.
 * Byte 1 says where the bytes restored come from:
 *   bit 0 clear: the input: u16 length, then those bytes;
 *   bit 0 set:   the save of a first device, driven by a program (u16
 *                length, then that many bytes of operations, as below),
 *                edited by the input: u8 count, then per edit u16 offset
 *                and u8 xor; with bit 1 set, then cut to a u16 length.
 *                The first device then goes, as the old VMM does.
 * The rest pokes the restored device, one operation a byte: for a virtio
 * device, the driver's (tests/fuzz/virtio_driver.h; it carries on with the
 * first device's queues) and, kinds 14 and 15, the back-end's: 14 runs
 * the event loop's ready events, 15 writes (high bit clear) or reads
 * bytes at the host's end; for the UART, bits 0-2 a register, bit 3 a
 * write of the next byte, else a read, bit 4 instead u8 bytes of host
 * input; the i8042, a write of the next byte to port (op % 5).
 *
 * Besides ASan and UBSan: a restore answers 0 or -EBADMSG; a refused one
 * leaves the device as it was made; an unedited save restores; a
 * restored device that has nothing to resume (the UART, the i8042, a
 * virtio device the driver has not made live) saves again to exactly the
 * bytes it was given; the transport's invariants hold after every poke;
 * no device leaves an fd on the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/state.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/cursor.h"
#include "tests/fuzz/pump.h"
#include "tests/fuzz/virtio_driver.h"

#define SMALL_BUF 4096 /* the back-ends' socket buffers: fill up quickly */
#define MAX_STATE 0x4000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        return 0;
    }
    return __real_ioctl(fd, request, arg);
}

enum kind { UART, I8042, CONSOLE, PORT, NET, KINDS };

struct device {
    enum kind kind;
    struct serial uart;
    struct i8042 kbd;
    struct virtio_console con;
    struct virtio_net net;
    int fds[2]; /* [0] the device's back-end, [1] the host's end */
};

static struct evloop loop;

static void no_irq(void *opaque)
{
    (void)opaque;
}

static void no_line(void *opaque, int level)
{
    (void)opaque;
    check_that(level == 0 || level == 1, "the UART's line is not 0 or 1");
}

static void no_reset(void *opaque)
{
    (void)opaque;
}

static void small_socket(int fd)
{
    int n = SMALL_BUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

/* Makes a device of kind k as the machine makes it. 0 or -1. */
static int make(struct device *d, enum kind k, struct guest_mem *mem)
{
    d->kind = k;
    d->fds[0] = d->fds[1] = -1;
    if (k == UART) {
        struct serial_callbacks cb = {.set_irq = no_line};
        return serial_init(&d->uart, &cb) < 0 ? -1 : 0;
    }
    if (k == I8042) {
        d->kbd = (struct i8042){.reset = no_reset};
        return 0;
    }
    int type = k == NET ? SOCK_DGRAM : SOCK_STREAM;
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, d->fds) < 0)
        return -1;
    small_socket(d->fds[0]);
    small_socket(d->fds[1]);
    fcntl(d->fds[1], F_SETFL, O_NONBLOCK);
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    int ret;
    if (k == NET)
        ret =
            virtio_net_init(&d->net, mem, &loop, d->fds[0], mac, no_irq, NULL);
    else if (k == PORT)
        ret = virtio_console_init_port(&d->con, mem, &loop, d->fds[0],
                                       d->fds[0], "runvm.agent", no_irq, NULL);
    else
        ret = virtio_console_init(&d->con, mem, &loop, d->fds[0], d->fds[0],
                                  no_irq, NULL);
    check_that(ret == 0, "making a virtio device failed");
    return 0;
}

static void unmake(struct device *d)
{
    switch (d->kind) {
    case UART: serial_free(&d->uart); break;
    case I8042: break;
    case NET: virtio_net_free(&d->net); break;
    default: virtio_console_free(&d->con); break;
    }
    for (int i = 0; i < 2; i++)
        if (d->fds[i] >= 0)
            close(d->fds[i]);
}

static struct virtio_dev *vdev(struct device *d)
{
    if (d->kind == NET)
        return &d->net.vdev;
    if (d->kind == CONSOLE || d->kind == PORT)
        return &d->con.vdev;
    return NULL;
}

static void save(struct device *d, struct state_w *w)
{
    state_w_init(w);
    int ret;
    if (d->kind == UART)
        ret = serial_save(&d->uart, w);
    else if (d->kind == I8042)
        ret = i8042_save(&d->kbd, w);
    else
        ret = virtio_mmio_save(vdev(d), w);
    check_that(ret == 0, "a save failed");
}

static int restore(struct device *d, const uint8_t *p, size_t n)
{
    struct state_r r;
    state_r_init(&r, p, n);
    if (d->kind == UART)
        return serial_restore(&d->uart, &r);
    if (d->kind == I8042)
        return i8042_restore(&d->kbd, &r);
    return virtio_mmio_restore(vdev(d), &r);
}

static bool same(const struct state_w *w, const uint8_t *p, size_t n)
{
    return w->len == n && (n == 0 || memcmp(w->buf, p, n) == 0);
}

/* The host's end of a back-end: some bytes (or a frame) in, or out. */
static void host_op(struct device *d, struct cursor *in)
{
    uint8_t n = cursor_u8(in);
    if (n & 0x80) {
        uint8_t buf[SMALL_BUF];
        (void)!read(d->fds[1], buf, (size_t)(n & 0x7f) * 32 + 1);
        return;
    }
    const uint8_t *data;
    size_t len = cursor_bytes(in, n, &data);
    if (len)
        (void)!send(d->fds[1], data, len, MSG_DONTWAIT);
}

/* One operation on d; drv is its driver (virtio devices). */
static void poke(struct device *d, struct virtio_driver *drv, struct cursor *in)
{
    uint8_t op = cursor_u8(in);
    if (d->kind == UART) {
        uint8_t v = 0;
        if (op & 0x10) {
            const uint8_t *data;
            size_t n = cursor_bytes(in, cursor_u8(in), &data);
            (void)serial_input(&d->uart, data, n);
        } else if (op & 0x08) {
            v = cursor_u8(in);
            serial_bus_ops.write(&d->uart, op & 7, &v, 1);
        } else {
            serial_bus_ops.read(&d->uart, op & 7, &v, 1);
        }
        return;
    }
    if (d->kind == I8042) {
        uint8_t v = cursor_u8(in);
        i8042_bus_ops.write(&d->kbd, op % I8042_NR_PORTS, &v, 1);
        return;
    }
    if (op % 16 < VIRTIO_DRIVER_KINDS)
        virtio_driver_step(drv, op, in);
    else if (op % 16 == 14)
        pump_ready(&loop);
    else
        host_op(d, in);
    virtio_driver_check(drv);
}

/* Whether the device had nothing to resume when restored from p, so that
 * its state is exactly what it was given: not a virtio device the status
 * in p (virtio_mmio_save's layout: after version, device id and queue
 * count) says is live; those process their queues at once. */
static bool at_rest(struct device *d, const uint8_t *p, size_t n)
{
    if (!vdev(d))
        return true;
    struct state_r r;
    state_r_init(&r, p, n);
    (void)state_get_u32(&r);
    (void)state_get_u32(&r);
    (void)state_get_u16(&r);
    uint32_t status = state_get_u32(&r);
    return !(status & VIRTIO_STATUS_DRIVER_OK) ||
           (status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

/* The device reads as it was made. */
static void check_fresh(struct device *d, const struct state_w *made)
{
    struct state_w now;
    save(d, &now);
    check_that(same(&now, made->buf, made->len),
               "a refused restore left something of its bytes behind");
    state_w_free(&now);
    struct virtio_dev *v = vdev(d);
    if (v) {
        check_that(v->status == 0 && v->interrupt_status == 0,
                   "a refused restore left a status");
        for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
            check_that(!v->queues[q].ready, "a refused restore left a queue");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct device first, second;
    static uint8_t state[MAX_STATE];
    if (loop.epfd == 0) {
        signal(SIGPIPE, SIG_IGN); /* virtio_console_init's contract */
        if (evloop_init(&loop) < 0)
            return 0;
    }
    struct guest_mem *mem = virtio_driver_ram();
    if (!mem || size < 2)
        return 0;
    struct cursor in;
    cursor_init(&in, data, size);
    enum kind kind = (enum kind)(cursor_u8(&in) % KINDS);
    uint8_t mode = cursor_u8(&in);
    struct virtio_driver drv;
    size_t n;
    bool edited = false;

    if (mode & 1) {
        /* A first device driven somewhere, saved, and gone. */
        if (make(&first, kind, mem) < 0)
            return 0;
        virtio_driver_init(&drv, vdev(&first), mem);
        const uint8_t *prog;
        size_t plen = cursor_bytes(&in, cursor_u16(&in), &prog);
        struct cursor pc;
        cursor_init(&pc, prog, plen);
        while (!cursor_empty(&pc))
            poke(&first, &drv, &pc);
        struct state_w w;
        save(&first, &w);
        unmake(&first);
        n = w.len < sizeof(state) ? w.len : sizeof(state);
        memcpy(state, w.buf, n);
        state_w_free(&w);
        for (unsigned int e = cursor_u8(&in); e > 0 && n > 0; e--) {
            uint16_t at = cursor_u16(&in);
            uint8_t x = cursor_u8(&in);
            state[at % n] ^= x;
            edited |= x != 0;
        }
        if (mode & 2) {
            size_t cut = cursor_u16(&in);
            edited |= cut < n;
            n = cut < n ? cut : n;
        }
    } else {
        const uint8_t *p;
        n = cursor_bytes(&in, cursor_u16(&in), &p);
        memcpy(state, p, n);
        edited = true;
    }

    if (make(&second, kind, mem) < 0)
        return 0;
    struct state_w made;
    save(&second, &made);
    int ret = restore(&second, state, n);
    check_that(ret == 0 || ret == -EBADMSG, "a restore answered neither 0 "
                                            "nor -EBADMSG");
    check_that(ret == 0 || edited, "an unedited save did not restore");
    if (ret < 0) {
        check_fresh(&second, &made);
        virtio_driver_init(&drv, vdev(&second), mem);
    } else {
        if (at_rest(&second, state, n)) {
            struct state_w again;
            save(&second, &again);
            check_that(same(&again, state, n),
                       "a restored device saves other bytes than it took");
            state_w_free(&again);
        }
        if (!(mode & 1))
            virtio_driver_init(&drv, vdev(&second), mem);
        /* The driver goes on with the first device's queues; whether the
         * device needs a reset is what the restored one says. */
        drv.dev = vdev(&second);
        drv.saw_need_reset = false;
    }
    state_w_free(&made);
    if (vdev(&second))
        virtio_driver_check(&drv);
    while (!cursor_empty(&in))
        poke(&second, &drv, &in);
    unmake(&second);
    for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        check_that(loop.handlers[i].fd == -1,
                   "a device left an fd on the event loop");
    return 0;
}
