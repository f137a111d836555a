#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "devices/virtio_console.h"
#include "tests/unit/mock_virtio_driver.h"
#include "core/evloop.h"
#include "core/guest_mem.h"
#include "core/state.h"

#define RAM     (4 * MiB)
#define RXRING  0x10000ULL
#define TXRING  0x20000ULL
#define CRXRING 0x30000ULL
#define CTXRING 0x40000ULL
#define CBUF    0x300000ULL /* control buffers from here */
#define BUF     0x100000ULL /* guest data buffers from here */

struct fixture {
    struct guest_mem mem;
    struct evloop loop;
    struct virtio_console *con;
    struct mock_vq rx, tx, crx, ctx;
    int host_in[2];  /* test writes [1] → console reads [0] */
    int host_out[2]; /* console writes [1] → test reads [0] */
    int irqs;
};

static void count_irq(void *opaque)
{
    ((struct fixture *)opaque)->irqs++;
}

static void start(struct fixture *f, int in_fd, int out_fd)
{
    f->con = calloc(1, sizeof(*f->con));
    assert_non_null(f->con);
    assert_int_equal(virtio_console_init(f->con, &f->mem, &f->loop, in_fd,
                                         out_fd, count_irq, f),
                     0);
    struct virtio_dev *dev = &f->con->vdev;
    mock_vq_init(&f->rx, &f->mem, 16, RXRING);
    mock_vq_init(&f->tx, &f->mem, 16, TXRING);
    uint32_t st = mock_negotiate(dev, (1ULL << VIRTIO_F_VERSION_1) |
                                          (1ULL << VIRTIO_RING_F_EVENT_IDX));
    assert_true(st & VIRTIO_STATUS_FEATURES_OK);
    mock_queue_setup(dev, VIRTIO_CONSOLE_RXQ, &f->rx);
    mock_queue_setup(dev, VIRTIO_CONSOLE_TXQ, &f->tx);
    mock_wr(dev, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

/* As start, for a named generic port (MULTIPORT, four queues). */
static void start_port(struct fixture *f, int in_fd, int out_fd,
                       const char *name)
{
    f->con = calloc(1, sizeof(*f->con));
    assert_non_null(f->con);
    assert_int_equal(virtio_console_init_port(f->con, &f->mem, &f->loop, in_fd,
                                              out_fd, name, count_irq, f),
                     0);
    struct virtio_dev *dev = &f->con->vdev;
    mock_vq_init(&f->rx, &f->mem, 16, RXRING);
    mock_vq_init(&f->tx, &f->mem, 16, TXRING);
    mock_vq_init(&f->crx, &f->mem, 16, CRXRING);
    mock_vq_init(&f->ctx, &f->mem, 16, CTXRING);
    uint32_t st = mock_negotiate(dev, (1ULL << VIRTIO_F_VERSION_1) |
                                          (1ULL << VIRTIO_CONSOLE_F_MULTIPORT));
    assert_true(st & VIRTIO_STATUS_FEATURES_OK);
    mock_queue_setup(dev, VIRTIO_CONSOLE_RXQ, &f->rx);
    mock_queue_setup(dev, VIRTIO_CONSOLE_TXQ, &f->tx);
    mock_queue_setup(dev, VIRTIO_CONSOLE_CTRL_RXQ, &f->crx);
    mock_queue_setup(dev, VIRTIO_CONSOLE_CTRL_TXQ, &f->ctx);
    mock_wr(dev, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(gm_init(&f->mem, RAM), 0);
    assert_int_equal(evloop_init(&f->loop), 0);
    assert_int_equal(pipe2(f->host_in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(f->host_out, O_CLOEXEC), 0);
    /* The test's own ends never block: a missing byte fails, not hangs. */
    assert_int_equal(fcntl(f->host_out[0], F_SETFL, O_NONBLOCK), 0);
    *state = f;
    return 0;
}

static int setup_pipes(void **state)
{
    setup(state);
    struct fixture *f = *state;
    start(f, f->host_in[0], f->host_out[1]);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->con) {
        virtio_console_free(f->con);
        free(f->con);
    }
    for (int i = 0; i < 2; i++) {
        if (f->host_in[i] >= 0)
            close(f->host_in[i]);
        if (f->host_out[i] >= 0)
            close(f->host_out[i]);
    }
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

/* Guest sends len bytes of data from buffer slot `slot`. */
static void guest_send(struct fixture *f, uint16_t slot, const void *data,
                       uint32_t len)
{
    uint64_t gpa = BUF + 0x10000ULL * slot;
    memcpy(host(f, gpa, len), data, len);
    mock_desc(&f->tx, slot, gpa, len, 0, 0);
    mock_publish(&f->tx, slot);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_TXQ);
}

/* Guest posts a receive buffer of len bytes at slot. */
static void guest_post_rx(struct fixture *f, uint16_t slot, uint32_t len)
{
    uint64_t gpa = BUF + 0x200000ULL + 0x1000ULL * slot;
    mock_desc(&f->rx, slot, gpa, len, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->rx, slot);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_RXQ);
}

static void run_loop(struct fixture *f, int ms)
{
    assert_int_equal(evloop_run(&f->loop, ms), -ETIMEDOUT);
}

static void tx_reaches_host(void **state)
{
    struct fixture *f = *state;
    guest_send(f, 0, "hello", 5);
    char buf[16];
    assert_int_equal(read(f->host_out[0], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(len, 0);
    assert_true(f->irqs >= 1);
}

static void tx_waits_for_slow_reader(void **state)
{
    struct fixture *f = *state;
    /* A 4 KiB pipe and 3 × 32 KiB of guest output: nothing may be lost. */
    assert_true(fcntl(f->host_out[1], F_SETPIPE_SZ, 4096) > 0);
    enum { CHUNK = 32768, N = 3 };
    static uint8_t sent[N * CHUNK];
    for (size_t i = 0; i < sizeof(sent); i++)
        sent[i] = (uint8_t)(i * 7 + i / 251);
    for (int i = 0; i < N; i++)
        guest_send(f, (uint16_t)i, sent + i * CHUNK, CHUNK);
    uint32_t id, len;
    /* The first chain cannot complete: it stays pending, nothing used. */
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);
    assert_true(f->con->tx_pending);

    static uint8_t got[N * CHUNK];
    size_t have = 0;
    int completed = 0;
    for (int rounds = 0; have < sizeof(got) && rounds < 10000; rounds++) {
        ssize_t n = read(f->host_out[0], got + have, 1000);
        assert_true(n > 0 || errno == EAGAIN);
        if (n > 0)
            have += (size_t)n;
        run_loop(f, 1); /* the loop sees the pipe writable again */
        while (mock_used(&f->tx, &id, &len) == 1) {
            assert_int_equal(id, completed);
            completed++;
        }
    }
    assert_int_equal(have, sizeof(sent));
    assert_memory_equal(got, sent, sizeof(sent));
    assert_int_equal(completed, N);
    assert_false(f->con->tx_pending);
    assert_int_equal(f->con->bytes_to_host, sizeof(sent));
}

static void tx_writable_descriptor_needs_reset(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->tx, 0, BUF, 16, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->tx, 0);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_TXQ);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    /* Stalled: the next, valid chain is not transmitted. */
    guest_send(f, 1, "x", 1);
    char c;
    assert_int_equal(read(f->host_out[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
}

static void rx_readonly_descriptor_needs_reset(void **state)
{
    struct fixture *f = *state;
    mock_desc(&f->rx, 0, BUF, 16, 0, 0);
    mock_publish(&f->rx, 0);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_RXQ);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void rx_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(write(f->host_in[1], "abcdef", 6), 6);
    /* No buffers posted: the loop must not spin on the readable fd nor
     * consume it. */
    run_loop(f, 20);
    assert_int_equal(f->con->bytes_to_guest, 0);
    /* A buffer appears: delivered at once, from the notification. */
    guest_post_rx(f, 0, 4);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 4);
    assert_memory_equal(host(f, BUF + 0x200000ULL, 4), "abcd", 4);
    guest_post_rx(f, 1, 64);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 1);
    assert_int_equal(len, 2);
    assert_memory_equal(host(f, BUF + 0x201000ULL, 2), "ef", 2);
}

static void rx_buffers_first_then_input(void **state)
{
    struct fixture *f = *state;
    guest_post_rx(f, 0, 64);
    guest_post_rx(f, 1, 64);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 0);
    assert_int_equal(write(f->host_in[1], "ping", 4), 4);
    int irqs = f->irqs;
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 4);
    assert_memory_equal(host(f, BUF + 0x200000ULL, 4), "ping", 4);
    assert_true(f->irqs > irqs);
    assert_int_equal(write(f->host_in[1], "pong", 4), 4);
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 1);
}

static void rx_eof_keeps_buffers(void **state)
{
    struct fixture *f = *state;
    guest_post_rx(f, 0, 64);
    assert_int_equal(write(f->host_in[1], "last", 4), 4);
    close(f->host_in[1]);
    f->host_in[1] = -1;
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 4);
    guest_post_rx(f, 1, 64);
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 0);
    assert_true(f->con->in_eof);
}

static void host_reader_gone_discards(void **state)
{
    struct fixture *f = *state;
    close(f->host_out[0]);
    f->host_out[0] = -1;
    guest_send(f, 0, "into the void", 13);
    uint32_t id, len;
    /* The guest is not left waiting for a reader that will never come. */
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_true(f->con->out_closed);
    assert_false(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                 VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void socket_both_ways(void **state)
{
    struct fixture *f = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    start(f, sv[0], sv[0]);
    guest_post_rx(f, 0, 64);
    guest_send(f, 1, "to host", 7);
    char buf[16];
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 7);
    assert_memory_equal(buf, "to host", 7);
    assert_int_equal(write(sv[1], "to guest", 8), 8);
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 8);
    assert_memory_equal(host(f, BUF + 0x200000ULL, 8), "to guest", 8);
    /* Peer hangs up: output discarded, input at EOF, nothing spins. */
    close(sv[1]);
    guest_post_rx(f, 1, 64);
    run_loop(f, 20);
    assert_true(f->con->in_eof);
    guest_send(f, 2, "late", 4);
    virtio_console_free(f->con);
    free(f->con);
    f->con = NULL;
    close(sv[0]);
}

static void regular_file_input(void **state)
{
    struct fixture *f = *state;
    char path[] = "/tmp/runvm-console-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "from a file", 11), 11);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    start(f, fd, f->host_out[1]);
    guest_post_rx(f, 0, 64);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 11);
    assert_memory_equal(host(f, BUF + 0x200000ULL, 11), "from a file", 11);
    virtio_console_free(f->con);
    free(f->con);
    f->con = NULL;
    close(fd);
}

static void reset_drops_pending_chain(void **state)
{
    struct fixture *f = *state;
    assert_true(fcntl(f->host_out[1], F_SETPIPE_SZ, 4096) > 0);
    static uint8_t big[65536];
    guest_send(f, 0, big, sizeof(big));
    assert_true(f->con->tx_pending);
    mock_wr(&f->con->vdev, VIRTIO_MMIO_STATUS, 0);
    assert_false(f->con->tx_pending);
    /* The loop stops asking for EPOLLOUT: it returns on timeout only. */
    char drain[8192];
    while (read(f->host_out[0], drain, sizeof(drain)) > 0)
        ;
    run_loop(f, 20);
}

static void connect_later_holds_output(void **state)
{
    struct fixture *f = *state;
    start(f, -1, -1);
    guest_send(f, 0, "early", 5);
    guest_post_rx(f, 1, 64);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->tx, &id, &len), 0); /* held, not lost */
    run_loop(f, 10);
    assert_int_equal(write(f->host_in[1], "hi", 2), 2);
    assert_int_equal(
        virtio_console_connect(f->con, f->host_in[0], f->host_out[1]), 0);
    assert_int_equal(
        virtio_console_connect(f->con, f->host_in[0], f->host_out[1]), -EBUSY);
    char buf[16];
    assert_int_equal(read(f->host_out[0], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 2);
}

/* A driver that kicks only when EVENT_IDX asks it to (as Linux's
 * virtqueue_kick_prepare_split does) and recycles each receive buffer once
 * consumed: host input must keep flowing, no notification lost. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static void *writer_thread(void *arg)
{
    int fd = *(int *)arg;
    static uint8_t chunk[4096];
    for (int i = 0; i < 256; i++) { /* 1 MiB */
        memset(chunk, i, sizeof(chunk));
        for (size_t off = 0; off < sizeof(chunk);) {
            ssize_t n = write(fd, chunk + off, sizeof(chunk) - off);
            if (n > 0)
                off += (size_t)n;
        }
    }
    return NULL;
}

static void rx_streams_with_event_idx_kicks(void **state)
{
    struct fixture *f = *state;
    enum { NBUF = 8, BUFSZ = 1024, TOTAL = 1 << 20 };
    for (uint16_t i = 0; i < NBUF; i++)
        mock_desc(&f->rx, i, BUF + 0x200000ULL + BUFSZ * i, BUFSZ,
                  VRING_DESC_F_WRITE, 0);
    uint16_t old = f->rx.avail_idx;
    for (uint16_t i = 0; i < NBUF; i++)
        mock_publish(&f->rx, i);
    if (need_event(mock_avail_event(&f->rx), f->rx.avail_idx, old))
        virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_RXQ);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_thread, &f->host_in[1]),
                     0);
    uint64_t got = 0;
    int idle = 0;
    while (got < TOTAL && idle < 200) {
        assert_int_equal(evloop_run(&f->loop, 5), -ETIMEDOUT);
        uint32_t id, len;
        old = f->rx.avail_idx;
        int progressed = 0;
        while (mock_used(&f->rx, &id, &len) == 1) {
            uint8_t *p = host(f, BUF + 0x200000ULL + BUFSZ * id, len);
            for (uint32_t i = 0; i < len; i++)
                assert_int_equal(p[i], (uint8_t)((got + i) / 4096));
            got += len;
            mock_publish(&f->rx, (uint16_t)id);
            progressed = 1;
        }
        if (f->rx.avail_idx != old &&
            need_event(mock_avail_event(&f->rx), f->rx.avail_idx, old))
            virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_RXQ);
        idle = progressed ? 0 : idle + 1;
    }
    pthread_join(th, NULL);
    assert_int_equal(got, TOTAL);
}

/* ---- MULTIPORT: one named generic port --------------------------------- */

/* Driver → device control message from slot. */
static void ctrl_to_device(struct fixture *f, uint16_t slot, uint32_t id,
                           uint16_t event, uint16_t value)
{
    struct virtio_console_control c = {
        .id = id, .event = event, .value = value};
    uint64_t gpa = CBUF + 0x100ULL * slot;
    memcpy(host(f, gpa, sizeof(c)), &c, sizeof(c));
    mock_desc(&f->ctx, slot, gpa, sizeof(c), 0, 0);
    mock_publish(&f->ctx, slot);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
}

/* Posts a control receive buffer at slot. */
static void ctrl_post(struct fixture *f, uint16_t slot)
{
    mock_desc(&f->crx, slot, CBUF + 0x8000ULL + 0x100ULL * slot, 0x100,
              VRING_DESC_F_WRITE, 0);
    mock_publish(&f->crx, slot);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_CTRL_RXQ);
}

/* The next device → driver control message: 1 and its fields, or 0. */
static int ctrl_from_device(struct fixture *f, struct virtio_console_control *c,
                            char *extra, size_t extra_len)
{
    uint32_t id, len;
    if (mock_used(&f->crx, &id, &len) != 1)
        return 0;
    assert_true(len >= sizeof(*c) && len - sizeof(*c) < extra_len);
    const uint8_t *p = host(f, CBUF + 0x8000ULL + 0x100ULL * id, len);
    memcpy(c, p, sizeof(*c));
    memcpy(extra, p + sizeof(*c), len - sizeof(*c));
    extra[len - sizeof(*c)] = '\0';
    return 1;
}

static void expect_ctrl(struct fixture *f, uint16_t event, uint16_t value,
                        const char *extra)
{
    struct virtio_console_control c;
    char got[128];
    assert_int_equal(ctrl_from_device(f, &c, got, sizeof(got)), 1);
    assert_int_equal(c.id, 0);
    assert_int_equal(c.event, event);
    assert_int_equal(c.value, value);
    assert_string_equal(got, extra);
}

static void port_offers_multiport_with_one_port(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    struct virtio_dev *dev = &f->con->vdev;
    mock_wr(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_true(mock_rd(dev, VIRTIO_MMIO_DEVICE_FEATURES) &
                (1u << VIRTIO_CONSOLE_F_MULTIPORT));
    /* max_nr_ports, config offset 4. */
    assert_int_equal(mock_rd(dev, 0x100 + 4), 1);
    assert_int_equal(mock_rd(dev, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    /* A console without a name keeps the plain one-port layout. */
    struct virtio_console plain;
    assert_int_equal(
        virtio_console_init(&plain, &f->mem, &f->loop, -1, -1, count_irq, f),
        0);
    mock_wr(&plain.vdev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_false(mock_rd(&plain.vdev, VIRTIO_MMIO_DEVICE_FEATURES) &
                 (1u << VIRTIO_CONSOLE_F_MULTIPORT));
    virtio_console_free(&plain);
}

static void port_rejects_bad_names(void **state)
{
    struct fixture *f = *state;
    struct virtio_console c;
    const char *bad[] = {"", "has space", "tab\t", "\x7f",
                         "0123456789012345678901234567890123456789"
                         "012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(virtio_console_init_port(&c, &f->mem, &f->loop, -1, -1,
                                                  bad[i], count_irq, f),
                         -EINVAL);
    assert_int_equal(virtio_console_init_port(&c, &f->mem, &f->loop, -1, -1,
                                              NULL, count_irq, f),
                     -EINVAL);
}

static void port_handshake_names_and_opens_port_0(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    struct virtio_console_control c;
    char extra[128];
    /* DEVICE_READY before any control buffer: PORT_ADD waits for one. */
    ctrl_to_device(f, 0, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->ctx, &id, &len), 1);
    assert_int_equal(ctrl_from_device(f, &c, extra, sizeof(extra)), 0);
    ctrl_post(f, 0);
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_ADD, 0, "");
    /* A port the device never added is ignored. */
    ctrl_post(f, 1);
    ctrl_to_device(f, 1, 5, VIRTIO_CONSOLE_PORT_READY, 1);
    assert_int_equal(ctrl_from_device(f, &c, extra, sizeof(extra)), 0);
    /* Port 0 ready: its name, then the host end open; never CONSOLE_PORT
     * (that would make it hvc0). */
    ctrl_post(f, 2);
    ctrl_to_device(f, 2, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_NAME, 0, "runvm.agent");
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_OPEN, 1, "");
    assert_int_equal(ctrl_from_device(f, &c, extra, sizeof(extra)), 0);
    /* A short control message is consumed and ignored. */
    mock_desc(&f->ctx, 3, CBUF, 4, 0, 0);
    mock_publish(&f->ctx, 3);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
    assert_false(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                 VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void port_holds_input_until_the_guest_opens_it(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    ctrl_post(f, 0);
    ctrl_to_device(f, 0, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    guest_post_rx(f, 0, 64);
    assert_int_equal(write(f->host_in[1], "RUN", 3), 3);
    run_loop(f, 20);
    uint32_t id, len;
    /* The driver would discard it: nothing delivered yet. */
    assert_int_equal(mock_used(&f->rx, &id, &len), 0);
    ctrl_to_device(f, 1, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(host(f, BUF + 0x200000ULL, 3), "RUN", 3);
    /* Output flows on port 0's transmit queue as before. */
    guest_send(f, 1, "OUT", 3);
    char buf[8];
    assert_int_equal(read(f->host_out[0], buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "OUT", 3);
    /* Closed again: further input waits. */
    ctrl_to_device(f, 2, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
    guest_post_rx(f, 1, 64);
    assert_int_equal(write(f->host_in[1], "more", 4), 4);
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 0);
}

static void port_control_queue_misuse_needs_reset(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    /* A device-writable buffer on the driver → device queue. */
    mock_desc(&f->ctx, 0, CBUF, 8, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->ctx, 0);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void port_control_buffer_too_small_needs_reset(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    mock_desc(&f->crx, 0, CBUF + 0x8000ULL, 4, VRING_DESC_F_WRITE, 0);
    mock_publish(&f->crx, 0);
    ctrl_to_device(f, 0, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* ---- snapshots ----------------------------------------------------------- */

static void snapshot_save(struct fixture *f, struct state_w *w)
{
    state_w_init(w);
    assert_int_equal(virtio_mmio_save(&f->con->vdev, w), 0);
}

static int snapshot_restore(struct fixture *f, const uint8_t *p, size_t len)
{
    struct state_r r;
    state_r_init(&r, p, len);
    return virtio_mmio_restore(&f->con->vdev, &r);
}

/* The old VMM goes, with its console and the back-end's fds; the restored
 * one gets new fds (as host_in/host_out again). */
static void old_vmm_goes(struct fixture *f)
{
    virtio_console_free(f->con);
    free(f->con);
    f->con = NULL;
    for (int i = 0; i < 2; i++) {
        close(f->host_in[i]);
        close(f->host_out[i]);
    }
    assert_int_equal(pipe2(f->host_in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(f->host_out, O_CLOEXEC), 0);
    assert_int_equal(fcntl(f->host_out[0], F_SETFL, O_NONBLOCK), 0);
    f->irqs = 0;
}

/* A console made as the machine makes it again: the same kind, the same
 * name, on the new fds (or none), not yet restored. */
static void remake(struct fixture *f, const char *port_name, bool fds)
{
    f->con = calloc(1, sizeof(*f->con));
    assert_non_null(f->con);
    int in = fds ? f->host_in[0] : -1, out = fds ? f->host_out[1] : -1;
    int ret = port_name
                  ? virtio_console_init_port(f->con, &f->mem, &f->loop, in, out,
                                             port_name, count_irq, f)
                  : virtio_console_init(f->con, &f->mem, &f->loop, in, out,
                                        count_irq, f);
    assert_int_equal(ret, 0);
}

/* Reads what the host end has, running the loop so the console writes
 * more, until want bytes came or nothing more does. */
static size_t host_read_all(struct fixture *f, uint8_t *buf, size_t want)
{
    size_t have = 0;
    for (int idle = 0; have < want && idle < 50;) {
        ssize_t n = read(f->host_out[0], buf + have, want - have);
        if (n > 0) {
            have += (size_t)n;
            idle = 0;
            continue;
        }
        run_loop(f, 2);
        idle++;
    }
    return have;
}

enum { BIG = 32768 };

/* The agent port as a snapshot finds it: the handshake up to its name
 * (PORT_OPEN still owed: no control buffer for it yet), the guest has
 * it open, input delivered into one receive buffer and another one
 * waiting, a 32 KiB transmit chain the host took 4 KiB of and a chain
 * behind it, an interrupt not acknowledged. */
static void port_at_rest(struct fixture *f, uint8_t *big)
{
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    ctrl_post(f, 0);
    ctrl_to_device(f, 0, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_ADD, 0, "");
    ctrl_post(f, 1);
    ctrl_to_device(f, 1, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_NAME, 0, "runvm.agent");
    ctrl_to_device(f, 2, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert_true(f->con->guest_open);
    assert_int_not_equal(f->con->ctrl_pending, 0);
    guest_post_rx(f, 0, 64);
    guest_post_rx(f, 1, 64);
    assert_int_equal(write(f->host_in[1], "one", 3), 3);
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(len, 3);
    assert_true(fcntl(f->host_out[1], F_SETPIPE_SZ, 4096) > 0);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 13 + i / 509);
    guest_send(f, 1, big, BIG);
    assert_true(f->con->tx_pending);
    guest_send(f, 2, "tail", 4);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_INTERRUPT_STATUS) &
                VIRTIO_MMIO_INT_VRING);
}

static void snapshot_port_goes_on_where_it_stopped(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[BIG], got[BIG + 4];
    port_at_rest(f, big);
    uint32_t isr = mock_rd(&f->con->vdev, VIRTIO_MMIO_INTERRUPT_STATUS);
    struct state_w w;
    snapshot_save(f, &w);
    /* What the old host end took before the old VMM went. */
    ssize_t old = read(f->host_out[0], got, sizeof(got));
    assert_true(old > 0 && old < BIG);
    old_vmm_goes(f);

    remake(f, "runvm.agent", true);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    /* The unacknowledged interrupt is still there, and raised again. */
    assert_int_equal(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                         VIRTIO_STATUS_DRIVER_OK,
                     VIRTIO_STATUS_DRIVER_OK);
    assert_int_equal(mock_rd(&f->con->vdev, VIRTIO_MMIO_INTERRUPT_STATUS), isr);
    assert_true(f->irqs >= 1);
    /* The guest's output goes on where the old host end stopped: every
     * byte once, then the chain behind it; each chain used once. */
    size_t have = (size_t)old + host_read_all(f, got + old, sizeof(got) - old);
    assert_int_equal(have, sizeof(got));
    assert_memory_equal(got, big, BIG);
    assert_memory_equal(got + BIG, "tail", 4);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, 1);
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, 2);
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);
    /* Host input lands in the receive buffer posted before the snapshot. */
    assert_int_equal(write(f->host_in[1], "two", 3), 3);
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 1);
    assert_int_equal(len, 3);
    assert_memory_equal(host(f, BUF + 0x201000ULL, 3), "two", 3);
    /* The owed PORT_OPEN comes with the next control buffer, and nothing
     * else: no PORT_ADD or PORT_NAME again. The driver's three messages
     * were taken once. */
    struct virtio_console_control c;
    char extra[128];
    assert_int_equal(ctrl_from_device(f, &c, extra, sizeof(extra)), 0);
    ctrl_post(f, 3);
    ctrl_post(f, 4);
    expect_ctrl(f, VIRTIO_CONSOLE_PORT_OPEN, 1, "");
    assert_int_equal(ctrl_from_device(f, &c, extra, sizeof(extra)), 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(mock_used(&f->ctx, &id, &len), 1);
        assert_int_equal(id, i);
    }
    assert_int_equal(mock_used(&f->ctx, &id, &len), 0);
    /* And the port works as before. */
    guest_send(f, 5, "more", 4);
    char buf[8];
    assert_int_equal(host_read_all(f, (uint8_t *)buf, 4), 4);
    assert_memory_equal(buf, "more", 4);
    state_w_free(&w);
}

static void snapshot_console_connects_after_restore(void **state)
{
    struct fixture *f = *state;
    start(f, -1, -1);
    guest_send(f, 0, "early", 5); /* held: no back-end yet */
    guest_post_rx(f, 1, 64);
    assert_true(f->con->tx_pending);
    struct state_w w;
    snapshot_save(f, &w);
    old_vmm_goes(f);
    remake(f, NULL, false);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    assert_true(f->con->tx_pending); /* popped again, still held */
    uint32_t id, len;
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(virtio_console_connect(f->con, sv[0], sv[0]), 0);
    char buf[16];
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(mock_used(&f->tx, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(mock_used(&f->tx, &id, &len), 0);
    assert_int_equal(write(sv[1], "hi", 2), 2);
    run_loop(f, 20);
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(id, 1);
    assert_int_equal(len, 2);
    assert_memory_equal(host(f, BUF + 0x201000ULL, 2), "hi", 2);
    virtio_console_free(f->con);
    free(f->con);
    f->con = NULL;
    close(sv[0]);
    close(sv[1]);
    state_w_free(&w);
}

static void snapshot_after_the_driver_took_the_queue_away(void **state)
{
    struct fixture *f = *state;
    assert_true(fcntl(f->host_out[1], F_SETPIPE_SZ, 4096) > 0);
    static uint8_t big[BIG];
    guest_send(f, 0, big, BIG);
    assert_true(f->con->tx_pending);
    mock_wr(&f->con->vdev, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_CONSOLE_TXQ);
    mock_wr(&f->con->vdev, VIRTIO_MMIO_QUEUE_READY, 0);
    struct state_w w;
    snapshot_save(f, &w);
    old_vmm_goes(f);
    remake(f, NULL, true);
    /* Nothing held: the queue and its chain are gone; the rest is live. */
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    assert_false(f->con->tx_pending);
    assert_int_equal(f->con->tx_skip, 0);
    assert_int_equal(mock_rd(&f->con->vdev, VIRTIO_MMIO_QUEUE_READY), 0);
    guest_post_rx(f, 1, 64);
    assert_int_equal(write(f->host_in[1], "in", 2), 2);
    run_loop(f, 20);
    uint32_t id, len;
    assert_int_equal(mock_used(&f->rx, &id, &len), 1);
    assert_int_equal(len, 2);
    state_w_free(&w);
}

/* A control message that stops the device (PORT_OPEN meets a receive
 * buffer the device cannot write) ends the batch: the messages behind it
 * are not acted on, so the stopped port owes the driver nothing, and a
 * snapshot of it restores. */
static void port_stopped_mid_batch_handles_no_more(void **state)
{
    struct fixture *f = *state;
    start_port(f, f->host_in[0], f->host_out[1], "runvm.agent");
    mock_desc(&f->rx, 0, BUF, 16, 0, 0); /* not device-writable */
    mock_publish(&f->rx, 0);
    struct virtio_console_control open = {.event = VIRTIO_CONSOLE_PORT_OPEN,
                                          .value = 1},
                                  ready = {.event = VIRTIO_CONSOLE_PORT_READY,
                                           .value = 1};
    memcpy(host(f, CBUF, sizeof(open)), &open, sizeof(open));
    memcpy(host(f, CBUF + 0x100, sizeof(ready)), &ready, sizeof(ready));
    mock_desc(&f->ctx, 0, CBUF, sizeof(open), 0, 0);
    mock_desc(&f->ctx, 1, CBUF + 0x100, sizeof(ready), 0, 0);
    mock_publish(&f->ctx, 0);
    mock_publish(&f->ctx, 1);
    virtio_mmio_notify(&f->con->vdev, VIRTIO_CONSOLE_CTRL_TXQ);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    assert_int_equal(f->con->ctrl_pending, 0);
    assert_false(f->con->guest_open);
    struct state_w w;
    snapshot_save(f, &w);
    old_vmm_goes(f);
    remake(f, "runvm.agent", true);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    assert_true(mock_rd(&f->con->vdev, VIRTIO_MMIO_STATUS) &
                VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    state_w_free(&w);
}

/* The console reads as one just made: nothing of a refused state kept. */
static void assert_console_fresh(struct fixture *f)
{
    struct virtio_console *con = f->con;
    assert_int_equal(mock_rd(&con->vdev, VIRTIO_MMIO_STATUS), 0);
    assert_int_equal(mock_rd(&con->vdev, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
        assert_false(con->vdev.queues[q].ready);
    assert_int_equal(con->ctrl_pending, 0);
    assert_false(con->guest_open);
    assert_false(con->tx_pending);
    assert_int_equal(con->tx_skip, 0);
    assert_int_equal(f->irqs, 0);
}

struct patch {
    const char *what;
    size_t at; /* from the start of the console's own state */
    unsigned int len;
    uint64_t value;
};

static void restore_refuses_bad_console_state(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[BIG];
    port_at_rest(f, big);
    struct state_w w;
    snapshot_save(f, &w);
    old_vmm_goes(f);
    remake(f, "runvm.agent", true);
    /* Every truncation, and a byte too many. */
    for (size_t len = 0; len < w.len; len++) {
        assert_int_equal(snapshot_restore(f, w.buf, len), -EBADMSG);
        assert_console_fresh(f);
    }
    uint8_t *p = malloc(w.len + 1);
    assert_non_null(p);
    memcpy(p, w.buf, w.len);
    p[w.len] = 0;
    assert_int_equal(snapshot_restore(f, p, w.len + 1), -EBADMSG);
    assert_console_fresh(f);
    /* The console's own state: version, MULTIPORT, name length and name,
     * the control messages owed, guest_open, bytes of the held chain the
     * host took (11 name bytes). */
    size_t model = w.len - (4 + 1 + 1 + 11 + 4 + 1 + 8);
    const struct patch patches[] = {
        {"layout version", 0, 4, 2},
        {"not MULTIPORT", 4, 1, 0},
        {"a name as long as the limit", 5, 1, VIRTIO_CONSOLE_PORT_NAME_MAX},
        {"another name", 6, 1, 'R'},
        {"a control message no port owes", 17, 4, 0x8},
        {"guest_open neither 0 nor 1", 21, 1, 2},
    };
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        memcpy(p, w.buf, w.len);
        for (unsigned int k = 0; k < patches[i].len; k++)
            p[model + patches[i].at + k] =
                (uint8_t)(patches[i].value >> (8 * k));
        print_message("refusing: %s\n", patches[i].what);
        assert_int_equal(snapshot_restore(f, p, w.len), -EBADMSG);
        assert_console_fresh(f);
    }
    /* The name with a NUL after it: one byte more, the same string. */
    uint8_t *nul = malloc(w.len + 1);
    assert_non_null(nul);
    size_t name_end = model + 6 + 11;
    memcpy(nul, w.buf, name_end);
    nul[name_end] = 0;
    memcpy(nul + name_end + 1, w.buf + name_end, w.len - name_end);
    nul[model + 5] = 12;
    nul[model - 4]++; /* the model's length, low byte */
    assert_int_equal(snapshot_restore(f, nul, w.len + 1), -EBADMSG);
    assert_console_fresh(f);
    free(nul);
    /* A port's state on a device the driver has not made live (status
     * at offset 10 of the transport's state without DRIVER_OK). */
    memcpy(p, w.buf, w.len);
    p[10] &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
    assert_int_equal(snapshot_restore(f, p, w.len), -EBADMSG);
    assert_console_fresh(f);
    /* Another console: another name, or no ports at all. */
    virtio_console_free(f->con);
    free(f->con);
    remake(f, "runvm.other", true);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), -EBADMSG);
    assert_console_fresh(f);
    virtio_console_free(f->con);
    free(f->con);
    remake(f, NULL, true);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), -EBADMSG);
    assert_console_fresh(f);
    virtio_console_free(f->con);
    free(f->con);
    /* The state itself is good. */
    remake(f, "runvm.agent", true);
    assert_int_equal(snapshot_restore(f, w.buf, w.len), 0);
    free(p);
    state_w_free(&w);
}

static void restore_survives_garbage_console_state(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[BIG];
    port_at_rest(f, big);
    struct state_w w;
    snapshot_save(f, &w);
    old_vmm_goes(f);
    remake(f, "runvm.agent", true);
    uint32_t x = 88172645u;
    uint8_t junk[400];
    for (int i = 0; i < 500; i++) {
        size_t len = 0;
        for (size_t k = 0; k < sizeof(junk); k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[k] = (uint8_t)x;
        }
        len = x % sizeof(junk);
        assert_int_equal(snapshot_restore(f, junk, len), -EBADMSG);
        assert_console_fresh(f);
    }
    /* Each byte of a good state flipped: refused, or a console that
     * takes a driver's kicks and the loop's events. */
    uint8_t *p = malloc(w.len);
    assert_non_null(p);
    for (size_t at = 0; at < w.len; at++) {
        memcpy(p, w.buf, w.len);
        p[at] ^= 0x5a;
        int ret = snapshot_restore(f, p, w.len);
        if (ret == -EBADMSG) {
            assert_console_fresh(f);
            continue;
        }
        assert_int_equal(ret, 0);
        for (unsigned int q = 0; q < 5; q++)
            virtio_mmio_notify(&f->con->vdev, q);
        run_loop(f, 1);
        virtio_console_free(f->con);
        free(f->con);
        remake(f, "runvm.agent", true);
        f->irqs = 0;
    }
    free(p);
    state_w_free(&w);
}

int main(void)
{
#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup_pipes, teardown)
#define TB(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(tx_reaches_host),
        T(tx_waits_for_slow_reader),
        T(tx_writable_descriptor_needs_reset),
        T(rx_readonly_descriptor_needs_reset),
        T(rx_waits_for_buffers),
        T(rx_buffers_first_then_input),
        T(rx_eof_keeps_buffers),
        T(host_reader_gone_discards),
        TB(socket_both_ways),
        TB(regular_file_input),
        T(reset_drops_pending_chain),
        TB(connect_later_holds_output),
        T(rx_streams_with_event_idx_kicks),
        TB(port_offers_multiport_with_one_port),
        TB(port_rejects_bad_names),
        TB(port_handshake_names_and_opens_port_0),
        TB(port_holds_input_until_the_guest_opens_it),
        TB(port_control_queue_misuse_needs_reset),
        TB(port_control_buffer_too_small_needs_reset),
        TB(port_stopped_mid_batch_handles_no_more),
        TB(snapshot_port_goes_on_where_it_stopped),
        TB(snapshot_console_connects_after_restore),
        T(snapshot_after_the_driver_took_the_queue_away),
        TB(restore_refuses_bad_console_state),
        TB(restore_survives_garbage_console_state),
    };
    return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}
