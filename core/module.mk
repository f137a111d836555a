# core/: what every layer above stands on: the guest memory gate, the
# port I/O and MMIO buses, the event loop, saved state as bytes. Knows neither KVM nor devices.
CORE_SRCS := core/guest_mem.c core/bus.c core/evloop.c core/state.c
RUNVM_SRCS += $(CORE_SRCS)

UNIT_TESTS += test_guest_mem test_bus test_evloop test_state
test_guest_mem_SRCS := core/guest_mem.c arch/x86_64/ram.c
test_bus_SRCS := core/bus.c
test_evloop_SRCS := core/evloop.c
test_evloop_LIBS := -lpthread
test_state_SRCS := core/state.c
