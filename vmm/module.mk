# vmm/: KVM set-up, vCPUs, guest memory, buses, event loop, CLI.
VMM_CORE_SRCS := vmm/guest_mem.c vmm/bus.c vmm/evloop.c
# The VMM issue adds these and main.c to RUNVM_SRCS once runvm has a main.

UNIT_TESTS += test_guest_mem test_bus test_evloop
test_guest_mem_SRCS := vmm/guest_mem.c
test_bus_SRCS := vmm/bus.c
test_evloop_SRCS := vmm/evloop.c
test_evloop_LIBS := -lpthread
