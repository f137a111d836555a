# vmm/: KVM set-up, vCPUs, guest memory, buses, event loop, CLI.
VMM_CORE_SRCS := vmm/guest_mem.c vmm/bus.c vmm/evloop.c
# The machine runvm boots: KVM VM + vCPUs, exit dispatch, x86-64 boot
# (boot/), and the legacy devices a Linux guest needs (devices/serial,
# i8042, boot timer; virtio devices add themselves in devices/module.mk).
VMM_VM_SRCS := vmm/vm.c vmm/exit.c boot/cmdline.c \
               boot/x86_64/arch.c boot/x86_64/bzimage.c \
               boot/x86_64/bootparams.c boot/x86_64/mptable.c \
               boot/x86_64/cpu.c devices/serial.c devices/i8042.c \
               devices/boot_timer.c vmm/kvm_stats.c
RUNVM_SRCS += $(VMM_CORE_SRCS) $(VMM_VM_SRCS) vmm/args.c vmm/main.c

UNIT_TESTS += test_guest_mem test_bus test_evloop test_args
test_args_SRCS := vmm/args.c
test_guest_mem_SRCS := vmm/guest_mem.c
test_bus_SRCS := vmm/bus.c
test_evloop_SRCS := vmm/evloop.c
test_evloop_LIBS := -lpthread

UNIT_TESTS += test_bzimage test_bootparams test_mptable test_cmdline \
              test_exit test_serial test_cpu
              
test_bzimage_SRCS := boot/x86_64/bzimage.c
test_bootparams_SRCS := boot/x86_64/bootparams.c boot/x86_64/bzimage.c \
                        vmm/guest_mem.c
test_mptable_SRCS := boot/x86_64/mptable.c
test_cmdline_SRCS := boot/cmdline.c
test_exit_SRCS := vmm/exit.c vmm/bus.c devices/serial.c devices/i8042.c \
                  devices/boot_timer.c
test_exit_LIBS := -lpthread
test_serial_SRCS := devices/serial.c vmm/bus.c
test_serial_LIBS := -lpthread
test_cpu_SRCS := boot/x86_64/cpu.c vmm/guest_mem.c

# KVM exit counts per boot phase: the boot timer's counters, KVM's stats.
UNIT_TESTS += test_boot_timer test_kvm_stats
test_boot_timer_SRCS := devices/boot_timer.c
test_kvm_stats_SRCS := vmm/kvm_stats.c

TEST_PROGS += testinit

FUZZ_TARGETS += fuzz_bzimage
fuzz_bzimage_SRCS := boot/x86_64/bzimage.c
