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

#include "boot/x86_64/layout.h"
#include "devices/virtio_console.h"
#include "tests/unit/mock_virtio_driver.h"
#include "vmm/evloop.h"
#include "vmm/guest_mem.h"

#define RAM   (4 * MiB)
#define RXRING 0x10000ULL
#define TXRING 0x20000ULL
#define BUF    0x100000ULL /* guest data buffers from here */

struct fixture {
    struct guest_mem mem;
    struct evloop loop;
    struct virtio_console *con;
    struct mock_vq rx, tx;
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
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
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
    assert_int_equal(virtio_console_connect(f->con, f->host_in[0],
                                            f->host_out[1]),
                     0);
    assert_int_equal(virtio_console_connect(f->con, f->host_in[0],
                                            f->host_out[1]),
                     -EBUSY);
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
    assert_int_equal(pthread_create(&th, NULL, writer_thread,
                                    &f->host_in[1]), 0);
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

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_pipes, teardown)
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
    };
    return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}
