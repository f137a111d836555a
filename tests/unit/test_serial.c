#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "devices/serial.h"

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
    };
    return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
