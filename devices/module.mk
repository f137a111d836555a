# devices/: device models (they do not know KVM). Each engineer appends only
# their own lines here.

# virtio: split virtqueues, virtio-mmio transport, console and net models.
VIRTIO_SRCS := devices/virtq.c devices/virtio_mmio.c devices/virtio_console.c \
               devices/virtio_net.c
MOCK_VIRTIO := tests/unit/mock_virtio_driver.c
UNIT_TESTS += test_virtq test_virtio_mmio
test_virtq_SRCS := devices/virtq.c devices/virtio_mmio.c vmm/guest_mem.c \
                   $(MOCK_VIRTIO)
test_virtq_LIBS := -lpthread
test_virtio_mmio_SRCS := devices/virtio_mmio.c devices/virtq.c \
                         vmm/guest_mem.c $(MOCK_VIRTIO)
test_virtio_mmio_LIBS := -lpthread
UNIT_TESTS += test_virtio_console
test_virtio_console_SRCS := devices/virtio_console.c devices/virtio_mmio.c \
                            devices/virtq.c vmm/guest_mem.c vmm/evloop.c \
                            $(MOCK_VIRTIO)
test_virtio_console_LIBS := -lpthread
UNIT_TESTS += test_virtio_net
test_virtio_net_SRCS := devices/virtio_net.c devices/virtio_mmio.c \
                        devices/virtq.c vmm/guest_mem.c vmm/evloop.c \
                        $(MOCK_VIRTIO)
test_virtio_net_LIBS := -lpthread
# The fake tap (a socketpair) has no TUNSETOFFLOAD: the test wraps ioctl.
test_virtio_net_LDFLAGS := -Wl,--wrap=ioctl
FUZZ_TARGETS += fuzz_virtq
fuzz_virtq_SRCS := devices/virtq.c devices/virtio_mmio.c vmm/guest_mem.c
fuzz_virtq_LIBS := -lpthread
# Guest /init for the virtio-console integration test (also its host-side
# pattern generator and checker).
TEST_PROGS += hvc_bulk
# runvm links the virtio models and their KVM glue (vmm/vm_virtio.c).
RUNVM_SRCS += $(VIRTIO_SRCS) vmm/vm_virtio.c
