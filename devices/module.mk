# devices/: device models (they do not know KVM): the 8250 UART, i8042,
# the boot timer, virtio-mmio and its console and net devices.
LEGACY_DEV_SRCS := devices/serial.c devices/i8042.c devices/boot_timer.c
RUNVM_SRCS += $(LEGACY_DEV_SRCS)
# Saved state (snapshots) is written with core/state.c: whatever links a
# device links it too.
UNIT_TESTS += test_serial test_i8042 test_boot_timer
test_serial_SRCS := devices/serial.c core/bus.c core/state.c
test_serial_LIBS := -lpthread
test_i8042_SRCS := devices/i8042.c core/state.c
test_boot_timer_SRCS := devices/boot_timer.c

# virtio: split virtqueues, virtio-mmio transport, console and net models.
VIRTIO_SRCS := devices/virtq.c devices/virtio_mmio.c devices/virtio_console.c \
               devices/virtio_net.c
MOCK_VIRTIO := tests/unit/mock_virtio_driver.c
UNIT_TESTS += test_virtq test_virtio_mmio
test_virtq_SRCS := devices/virtq.c devices/virtio_mmio.c core/guest_mem.c \
                   core/state.c $(MOCK_VIRTIO)
test_virtq_LIBS := -lpthread
test_virtio_mmio_SRCS := devices/virtio_mmio.c devices/virtq.c \
                         core/guest_mem.c core/state.c $(MOCK_VIRTIO)
test_virtio_mmio_LIBS := -lpthread
UNIT_TESTS += test_virtio_console
test_virtio_console_SRCS := devices/virtio_console.c devices/virtio_mmio.c \
                            devices/virtq.c core/guest_mem.c core/evloop.c \
                            core/state.c $(MOCK_VIRTIO)
test_virtio_console_LIBS := -lpthread
UNIT_TESTS += test_virtio_net
test_virtio_net_SRCS := devices/virtio_net.c devices/virtio_mmio.c \
                        devices/virtq.c core/guest_mem.c core/evloop.c \
                        core/state.c $(MOCK_VIRTIO)
test_virtio_net_LIBS := -lpthread
# The fake tap (a socketpair) has no TUNSETOFFLOAD: the test wraps ioctl.
test_virtio_net_LDFLAGS := -Wl,--wrap=ioctl
FUZZ_TARGETS += fuzz_virtq
fuzz_virtq_SRCS := devices/virtq.c devices/virtio_mmio.c core/guest_mem.c \
                   core/state.c
fuzz_virtq_LIBS := -lpthread
# The console and net models behind their register file, driven by a
# hostile driver (tests/fuzz/virtio_driver.c); net's tap is a socketpair
# whose TUNSETOFFLOAD the target answers (ioctl wrapped).
VIRTIO_FUZZ_DRIVER := tests/fuzz/virtio_driver.c
FUZZ_TARGETS += fuzz_virtio_console fuzz_virtio_net
fuzz_virtio_console_SRCS := devices/virtio_console.c devices/virtio_mmio.c \
                            devices/virtq.c core/guest_mem.c core/evloop.c \
                            core/state.c $(VIRTIO_FUZZ_DRIVER)
fuzz_virtio_console_LIBS := -lpthread
fuzz_virtio_net_SRCS := devices/virtio_net.c devices/virtio_mmio.c \
                        devices/virtq.c core/guest_mem.c core/evloop.c \
                        core/state.c $(VIRTIO_FUZZ_DRIVER)
fuzz_virtio_net_LIBS := -lpthread -Wl,--wrap=ioctl
# Every device's restore from a snapshot, fed hostile bytes, then its
# register file poked (net's tap a socketpair: ioctl wrapped).
FUZZ_TARGETS += fuzz_device_restore
fuzz_device_restore_SRCS := devices/serial.c devices/i8042.c \
                            devices/virtio_console.c devices/virtio_net.c \
                            devices/virtio_mmio.c devices/virtq.c \
                            core/guest_mem.c core/evloop.c core/state.c \
                            $(VIRTIO_FUZZ_DRIVER)
fuzz_device_restore_LIBS := -lpthread -Wl,--wrap=ioctl
# Guest /init for the virtio-console integration test (also its host-side
# pattern generator and checker).
TEST_PROGS += hvc_bulk
RUNVM_SRCS += $(VIRTIO_SRCS)
