#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial.h"
#include "core/state.h"

static struct serial s;
static int level, level_changes, rx_empties;
static uint8_t out[256];
static size_t out_len;

static void out_cb(void *o, const uint8_t *d, size_t n)
{
    (void)o;
    memcpy(out + out_len, d, n);
    out_len += n;
}
static void irq_cb(void *o, int l)
{
    (void)o;
    level = l;
    level_changes++;
}
static void rx_empty_cb(void *o)
{
    (void)o;
    rx_empties++;
}

static int setup(void **state)
{
    (void)state;
    level = level_changes = rx_empties = 0;
    out_len = 0;
    struct serial_callbacks cb = {out_cb, irq_cb, rx_empty_cb, NULL};
    return serial_init(&s, &cb);
}
static int teardown(void **state)
{
    (void)state;
    serial_free(&s);
    return 0;
}

static uint8_t rd(uint64_t reg)
{
    uint8_t v = 0xee;
    serial_bus_ops.read(&s, reg, &v, 1);
    return v;
}
static void wr(uint64_t reg, uint8_t v)
{
    serial_bus_ops.write(&s, reg, &v, 1);
}

/* The checks Linux's 8250 autoconfig() makes before it trusts a port. */
static void passes_linux_probe(void **state)
{
    (void)state;
    wr(1, 0);
    assert_int_equal(rd(1) & 0x0f, 0);
    wr(1, 0x0f);
    assert_int_equal(rd(1) & 0x0f, 0x0f);
    wr(1, 0);
    wr(4, 0x1a); /* loopback, RTS, OUT2 */
    assert_int_equal(rd(6) & 0xf0, 0x90);
    wr(4, 0);
    wr(2, 0x01); /* enable FIFOs: a 16550A answers 0xc0 in IIR */
    assert_int_equal(rd(2) & 0xc0, 0xc0);
    wr(7, 0x5a);
    assert_int_equal(rd(7), 0x5a);
    /* Divisor latch behind DLAB. */
    wr(3, 0x80);
    wr(0, 0x0c);
    wr(1, 0x00);
    assert_int_equal(rd(0), 0x0c);
    wr(3, 0x03);
    assert_int_equal(rd(3), 0x03);
    assert_int_equal(out_len, 0); /* none of that was output */
}

static void transmit_interrupt_cycle(void **state)
{
    (void)state;
    wr(0, 'a');
    assert_int_equal(out_len, 1);
    assert_int_equal(level, 0); /* THRI not enabled: no interrupt */
    wr(1, 0x02);                /* enable THRI while empty: interrupt at once */
    assert_int_equal(level, 1);
    assert_int_equal(rd(2) & 0x0f, 0x02); /* IIR says THRI... */
    assert_int_equal(level, 0);           /* ...and reading it clears it */
    assert_int_equal(rd(2) & 0x0f, 0x01);
    wr(0, 'b');
    assert_int_equal(level, 1);
    wr(1, 0);
    assert_int_equal(level, 0);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(rd(5) & 0x60, 0x60);
}

static void receive_with_backpressure(void **state)
{
    (void)state;
    wr(1, 0x01); /* RDI */
    assert_int_equal(rd(5) & 0x01, 0);
    uint8_t buf[SERIAL_RX_FIFO + 10];
    memset(buf, 'x', sizeof(buf));
    buf[0] = 'A';
    assert_int_equal(serial_input(&s, buf, sizeof(buf)), SERIAL_RX_FIFO);
    assert_int_equal(serial_rx_space(&s), 0);
    assert_int_equal(serial_input(&s, buf, 1), 0);
    assert_int_equal(level, 1);
    assert_int_equal(rd(2) & 0x0f, 0x04);
    assert_int_equal(rd(5) & 0x01, 1);
    assert_int_equal(rd(0), 'A');
    for (int i = 1; i < SERIAL_RX_FIFO; i++)
        assert_int_equal(rd(0), 'x');
    assert_int_equal(rx_empties, 1);
    assert_int_equal(level, 0);
    assert_int_equal(rd(5) & 0x01, 0);
    assert_int_equal(rd(0), 0); /* empty FIFO reads 0, not stale data */
}

static void loopback_does_not_output(void **state)
{
    (void)state;
    wr(4, 0x10);
    wr(0, 'z');
    assert_int_equal(out_len, 0);
    assert_int_equal(rd(0), 'z');
}

static void hostile_accesses(void **state)
{
    (void)state;
    /* Wide and out-of-range accesses are harmless. */
    uint8_t v[8];
    memset(v, 0xee, sizeof(v));
    serial_bus_ops.read(&s, 6, v, 4);
    assert_int_equal(v[2], 0);
    assert_int_equal(v[3], 0);
    memset(v, 0xff, sizeof(v));
    serial_bus_ops.write(&s, 5, v, 8);
    for (int r = 0; r < 256; r++)
        wr((uint64_t)(r % 8), (uint8_t)r);
    (void)rd(2);
}

/* ---- snapshots ----------------------------------------------------------- */

/* What a UART does, seen through its callbacks (opaque: this). */
struct watch {
    int level, level_changes, rx_empties;
    uint8_t out[64];
    size_t out_len;
};

static void watch_out(void *o, const uint8_t *d, size_t n)
{
    struct watch *w = o;
    memcpy(w->out + w->out_len, d, n);
    w->out_len += n;
}
static void watch_irq(void *o, int l)
{
    struct watch *w = o;
    w->level = l;
    w->level_changes++;
}
static void watch_rx_empty(void *o)
{
    ((struct watch *)o)->rx_empties++;
}

static void uart_init(struct serial *u, struct watch *w)
{
    memset(w, 0, sizeof(*w));
    struct serial_callbacks cb = {watch_out, watch_irq, watch_rx_empty, w};
    assert_int_equal(serial_init(u, &cb), 0);
}

static uint8_t urd(struct serial *u, uint64_t reg)
{
    uint8_t v = 0xee;
    serial_bus_ops.read(u, reg, &v, 1);
    return v;
}
static void uwr(struct serial *u, uint64_t reg, uint8_t v)
{
    serial_bus_ops.write(u, reg, &v, 1);
}

static void save(struct serial *u, struct state_w *w)
{
    state_w_init(w);
    assert_int_equal(serial_save(u, w), 0);
}

static int restore(struct serial *u, const uint8_t *p, size_t len)
{
    struct state_r r;
    state_r_init(&r, p, len);
    return serial_restore(u, &r);
}

/* A UART as Linux leaves it mid-session: 9600 8N1 through the divisor
 * latch, FIFOs on, RDI and THRI enabled, DTR/RTS/OUT2, a scratch value,
 * a receive FIFO that has wrapped round its ring, both interrupts
 * pending and the line high. */
static void busy_uart(struct serial *u)
{
    uwr(u, 3, 0x80);
    uwr(u, 0, 0x0c);
    uwr(u, 1, 0x00);
    uwr(u, 3, 0x03);
    uwr(u, 2, 0x01);
    uwr(u, 4, 0x0b);
    uwr(u, 7, 0x5a);
    uwr(u, 1, 0x03);
    uint8_t in[SERIAL_RX_FIFO];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)('0' + i % 64);
    assert_int_equal(serial_input(u, in, sizeof(in)), SERIAL_RX_FIFO);
    for (int i = 0; i < 40; i++)
        (void)urd(u, 0);
    assert_int_equal(serial_input(u, (const uint8_t *)"wrapped round", 13), 13);
}

/* Every register read, the FIFO drained, output, input and the interrupt
 * cycle through the register file: what the guest would see next. */
static size_t probe(struct serial *u, uint8_t *trace)
{
    size_t n = 0;
    for (uint64_t reg = 1; reg < SERIAL_NR_PORTS; reg++)
        if (reg != 2)
            trace[n++] = urd(u, reg);
    trace[n++] = urd(u, 2); /* RDI */
    for (int i = 0; i < SERIAL_RX_FIFO + 2; i++)
        trace[n++] = urd(u, 0);
    trace[n++] = urd(u, 5);
    trace[n++] = urd(u, 2); /* THRI, cleared by the read */
    trace[n++] = urd(u, 2);
    uwr(u, 0, 'x');
    trace[n++] = urd(u, 2);
    uwr(u, 3, 0x83);
    trace[n++] = urd(u, 0);
    trace[n++] = urd(u, 1);
    uwr(u, 3, 0x03);
    assert_int_equal(serial_input(u, (const uint8_t *)"ab", 2), 2);
    trace[n++] = urd(u, 2);
    trace[n++] = urd(u, 0);
    trace[n++] = urd(u, 0);
    trace[n++] = urd(u, 2);
    return n;
}

static void snapshot_uart_goes_on_the_same(void **state)
{
    (void)state;
    struct serial a, b;
    struct watch wa, wb;
    uart_init(&a, &wa);
    busy_uart(&a);
    assert_int_equal(wa.level, 1);
    struct state_w w;
    save(&a, &w);
    int changes = wa.level_changes, empties = wa.rx_empties;

    uart_init(&b, &wb);
    assert_int_equal(restore(&b, w.buf, w.len), 0);
    /* The restored line is raised, as the original's is. */
    assert_int_equal(wb.level, 1);
    assert_int_equal(wb.level_changes, 1);
    struct state_w w2;
    save(&b, &w2);
    assert_int_equal(w2.len, w.len);
    assert_memory_equal(w2.buf, w.buf, w.len);

    uint8_t ta[256], tb[256];
    size_t na = probe(&a, ta), nb = probe(&b, tb);
    assert_int_equal(na, nb);
    assert_memory_equal(ta, tb, na);
    assert_int_equal(wa.out_len, 1);
    assert_int_equal(wb.out_len, 1);
    assert_int_equal(wa.level, wb.level);
    assert_int_equal(wb.level_changes - 1, wa.level_changes - changes);
    assert_int_equal(wb.rx_empties, wa.rx_empties - empties);
    assert_int_equal(wb.rx_empties, 2); /* drained twice */
    state_w_free(&w2);
    state_w_free(&w);
    serial_free(&a);
    serial_free(&b);
}

static void snapshot_idle_uart_leaves_line_alone(void **state)
{
    (void)state;
    struct serial a, b;
    struct watch wa, wb;
    uart_init(&a, &wa);
    struct state_w w;
    save(&a, &w);
    uart_init(&b, &wb);
    assert_int_equal(restore(&b, w.buf, w.len), 0);
    assert_int_equal(wb.level_changes, 0);
    state_w_free(&w);
    serial_free(&a);
    serial_free(&b);
}

/* Offsets in serial_save's layout. */
enum {
    AT_VERSION = 0,
    AT_IER = 4,
    AT_MCR = 6,
    AT_LSR = 7,
    AT_MSR = 8,
    AT_FCR = 10,
    AT_THR = 13,
    AT_IRQ = 14,
    AT_COUNT = 15,
};

static void restore_refuses_bad_uart_state(void **state)
{
    (void)state;
    struct serial a, b;
    struct watch wa, wb;
    uart_init(&a, &wa);
    busy_uart(&a);
    struct state_w w;
    save(&a, &w);
    uart_init(&b, &wb);
    /* b keeps what it had after any refusal: a state of its own. */
    uwr(&b, 7, 0x77);
    uwr(&b, 1, 0x02);
    assert_int_equal(wb.level, 1);
    struct state_w before;
    save(&b, &before);
    int changes = wb.level_changes;

    uint8_t *p = malloc(w.len + 1);
    assert_non_null(p);
    for (size_t len = 0; len <= w.len + 1; len++) {
        if (len == w.len)
            continue;
        memcpy(p, w.buf, w.len);
        p[w.len] = 0;
        assert_int_equal(restore(&b, p, len), -EBADMSG);
    }
    const struct {
        const char *what;
        size_t at;
        uint8_t value;
    } patches[] = {
        {"layout version", AT_VERSION, 2},
        {"IER bits the UART lacks", AT_IER, 0x13},
        {"MCR bits the UART lacks", AT_MCR, 0x2b},
        {"LSR without THRE", AT_LSR, 0x41},
        {"LSR without DR while data waits", AT_LSR, 0x60},
        {"modem lines nobody asserts", AT_MSR, 0x00},
        {"FCR bits the UART keeps none of", AT_FCR, 0x03},
        {"thr_interrupt neither 0 nor 1", AT_THR, 2},
        {"irq_level neither 0 nor 1", AT_IRQ, 2},
        {"the line low with an interrupt pending", AT_IRQ, 0},
        {"more bytes than the FIFO holds", AT_COUNT, SERIAL_RX_FIFO + 1},
        {"fewer bytes than follow", AT_COUNT, 1},
    };
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        memcpy(p, w.buf, w.len);
        p[patches[i].at] = patches[i].value;
        print_message("refusing: %s\n", patches[i].what);
        assert_int_equal(restore(&b, p, w.len), -EBADMSG);
    }
    uint32_t x = 2463534242u;
    for (int i = 0; i < 2000; i++) {
        size_t len = 0;
        uint8_t junk[96];
        for (size_t k = 0; k < sizeof(junk); k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[k] = (uint8_t)x;
        }
        len = x % sizeof(junk);
        assert_int_equal(restore(&b, junk, len), -EBADMSG);
    }
    struct state_w after;
    save(&b, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.buf, before.buf, before.len);
    assert_int_equal(wb.level_changes, changes);
    assert_int_equal(restore(&b, w.buf, w.len), 0);
    free(p);
    state_w_free(&after);
    state_w_free(&before);
    state_w_free(&w);
    serial_free(&a);
    serial_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(passes_linux_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(transmit_interrupt_cycle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(receive_with_backpressure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(loopback_does_not_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hostile_accesses, setup, teardown),
        cmocka_unit_test(snapshot_uart_goes_on_the_same),
        cmocka_unit_test(snapshot_idle_uart_leaves_line_alone),
        cmocka_unit_test(restore_refuses_bad_uart_state),
    };
    return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
