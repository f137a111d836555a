#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/boot_timer.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "vmm/exit.h"

/* A fake kvm_run page: the struct followed by room for I/O data, as KVM
 * lays it out. */
#define RUN_SIZE 4096
static union {
    struct kvm_run run;
    uint8_t bytes[RUN_SIZE];
} page;

static struct bus pio, mmio;
static struct serial uart;
static struct i8042 kbc;
static struct boot_timer timer;
static uint8_t uart_out[64];
static size_t uart_out_len;
static int resets;
static int irq_level;
static struct exit_ctx ctx = {&pio, &mmio, RUN_SIZE};

static void out_cb(void *opaque, const uint8_t *data, size_t len)
{
    (void)opaque;
    memcpy(uart_out + uart_out_len, data, len);
    uart_out_len += len;
}

static void irq_cb(void *opaque, int level)
{
    (void)opaque;
    irq_level = level;
}

static void reset_cb(void *opaque)
{
    (void)opaque;
    resets++;
}

static uint64_t fake_now(void)
{
    return 42000000;
}

static int setup(void **state)
{
    (void)state;
    memset(&page, 0, sizeof(page));
    memset(&pio, 0, sizeof(pio));
    memset(&mmio, 0, sizeof(mmio));
    memset(&timer, 0, sizeof(timer));
    timer.now_ns = fake_now;
    uart_out_len = 0;
    resets = 0;
    irq_level = 0;
    struct serial_callbacks cb = {.out = out_cb, .set_irq = irq_cb};
    assert_int_equal(serial_init(&uart, &cb), 0);
    kbc = (struct i8042){.reset = reset_cb};
    assert_int_equal(bus_register(&pio, LAYOUT_PORT_COM1, SERIAL_NR_PORTS,
                                  &serial_bus_ops, &uart),
                     0);
    assert_int_equal(bus_register(&pio, LAYOUT_PORT_I8042_DATA, I8042_NR_PORTS,
                                  &i8042_bus_ops, &kbc),
                     0);
    assert_int_equal(bus_register(&pio, LAYOUT_PORT_BOOT_TIMER, 1,
                                  &boot_timer_bus_ops, &timer),
                     0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    serial_free(&uart);
    return 0;
}

/* Builds a port I/O exit with data placed after the struct. */
static uint8_t *io_exit(uint8_t dir, uint16_t port, uint8_t size,
                        uint32_t count)
{
    page.run.exit_reason = KVM_EXIT_IO;
    page.run.io.direction = dir;
    page.run.io.port = port;
    page.run.io.size = size;
    page.run.io.count = count;
    page.run.io.data_offset = sizeof(struct kvm_run);
    return page.bytes + page.run.io.data_offset;
}

static void serial_output(void **state)
{
    (void)state;
    uint8_t *d = io_exit(KVM_EXIT_IO_OUT, LAYOUT_PORT_COM1, 1, 1);
    d[0] = 'h';
    struct exit_result r = exit_handle(&ctx, &page.run);
    assert_int_equal(r.action, EXIT_CONTINUE);
    /* rep outsb: count > 1 sends each byte. */
    d = io_exit(KVM_EXIT_IO_OUT, LAYOUT_PORT_COM1, 1, 2);
    memcpy(d, "i\n", 2);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(uart_out_len, 3);
    assert_memory_equal(uart_out, "hi\n", 3);
}

static void serial_status_read(void **state)
{
    (void)state;
    uint8_t *d = io_exit(KVM_EXIT_IO_IN, LAYOUT_PORT_COM1 + 5, 1, 1);
    d[0] = 0xaa;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(d[0] & 0x60, 0x60); /* THRE | TEMT: ready to send */
}

static void i8042_reset_stops_nothing_but_calls_back(void **state)
{
    (void)state;
    uint8_t *d = io_exit(KVM_EXIT_IO_OUT, LAYOUT_PORT_I8042_CMD, 1, 1);
    d[0] = 0xfe;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(resets, 1);
    /* Other commands and the data port do not reset. */
    d[0] = 0xaa;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    d = io_exit(KVM_EXIT_IO_OUT, LAYOUT_PORT_I8042_DATA, 1, 1);
    d[0] = 0xfe;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(resets, 1);
    /* The status port reads 0: nothing pending, ready for a command. */
    d = io_exit(KVM_EXIT_IO_IN, LAYOUT_PORT_I8042_CMD, 1, 1);
    d[0] = 0x55;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(d[0], 0);
}

static void boot_timer_records(void **state)
{
    (void)state;
    for (int i = 0; i < BOOT_TIMER_MAX_MARKS + 3; i++) {
        uint8_t *d = io_exit(KVM_EXIT_IO_OUT, LAYOUT_PORT_BOOT_TIMER, 1, 1);
        d[0] = (uint8_t)(i + 1);
        assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    }
    assert_int_equal(timer.nr_marks, BOOT_TIMER_MAX_MARKS + 3);
    assert_int_equal(timer.marks[0].value, 1);
    assert_int_equal(timer.marks[0].ns, 42000000);
    assert_int_equal(timer.marks[BOOT_TIMER_MAX_MARKS - 1].value,
                     BOOT_TIMER_MAX_MARKS);
}

static void unknown_port_reads_zero(void **state)
{
    (void)state;
    uint8_t *d = io_exit(KVM_EXIT_IO_IN, 0x70, 4, 2);
    memset(d, 0xaa, 8);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    for (int i = 0; i < 8; i++)
        assert_int_equal(d[i], EXIT_PIO_UNCLAIMED_BYTE);
    assert_int_equal(d[8], 0); /* nothing past count * size */
    d = io_exit(KVM_EXIT_IO_OUT, 0x80, 1, 1);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
}

static void malformed_io_is_refused(void **state)
{
    (void)state;
    io_exit(KVM_EXIT_IO_IN, 0x70, 1, 1);
    page.run.io.data_offset = RUN_SIZE; /* data would lie past the page */
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
    io_exit(KVM_EXIT_IO_IN, 0x70, 4, 0x40000000); /* count * size huge */
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
    io_exit(KVM_EXIT_IO_IN, 0x70, 3, 1);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
    io_exit(KVM_EXIT_IO_IN, 0x70, 1, 0);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
    io_exit(KVM_EXIT_IO_IN, 0x70, 1, 1);
    page.run.io.data_offset = UINT64_MAX - 1;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
}

static void mmio_unclaimed(void **state)
{
    (void)state;
    page.run.exit_reason = KVM_EXIT_MMIO;
    page.run.mmio.phys_addr = LAYOUT_VIRTIO_MMIO_BASE;
    page.run.mmio.len = 4;
    page.run.mmio.is_write = 0;
    memset(page.run.mmio.data, 0xaa, 8);
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    assert_int_equal(page.run.mmio.data[0] | page.run.mmio.data[3], 0);
    page.run.mmio.is_write = 1;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_CONTINUE);
    page.run.mmio.len = 9;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
    page.run.mmio.len = 0;
    assert_int_equal(exit_handle(&ctx, &page.run).action, EXIT_ERROR);
}

static void ends_and_errors(void **state)
{
    (void)state;
    const struct {
        uint32_t reason;
        enum exit_action action;
    } cases[] = {
        {KVM_EXIT_HLT, EXIT_STOP},
        {KVM_EXIT_SHUTDOWN, EXIT_STOP},
        {KVM_EXIT_INTR, EXIT_CONTINUE},
        {KVM_EXIT_FAIL_ENTRY, EXIT_ERROR},
        {KVM_EXIT_INTERNAL_ERROR, EXIT_ERROR},
        {KVM_EXIT_UNKNOWN, EXIT_ERROR},
        {12345, EXIT_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&page, 0, sizeof(page));
        page.run.exit_reason = cases[i].reason;
        struct exit_result r = exit_handle(&ctx, &page.run);
        if (r.action != cases[i].action)
            fail_msg("exit reason %u: action %d, want %d", cases[i].reason,
                     r.action, cases[i].action);
        if (r.action != EXIT_CONTINUE)
            assert_non_null(r.why);
    }
    page.run.exit_reason = KVM_EXIT_SYSTEM_EVENT;
    page.run.system_event.type = KVM_SYSTEM_EVENT_RESET;
    struct exit_result r = exit_handle(&ctx, &page.run);
    assert_int_equal(r.action, EXIT_STOP);
    assert_string_equal(r.why, "guest reset");
    /* SHUTDOWN is what a triple fault gives. */
    page.run.exit_reason = KVM_EXIT_SHUTDOWN;
    r = exit_handle(&ctx, &page.run);
    assert_non_null(strstr(r.why, "triple fault"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serial_output, setup, teardown),
        cmocka_unit_test_setup_teardown(serial_status_read, setup, teardown),
        cmocka_unit_test_setup_teardown(
            i8042_reset_stops_nothing_but_calls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(boot_timer_records, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_port_reads_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(malformed_io_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mmio_unclaimed, setup, teardown),
        cmocka_unit_test_setup_teardown(ends_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("exit", tests, NULL, NULL);
}
