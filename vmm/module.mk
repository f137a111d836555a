# vmm/: the KVM VM (vm.c), its exit dispatch, KVM's exit counters, and
# the glue that attaches device models to it (virtio-mmio slots, the agent
# channel's console).
VMM_SRCS := vmm/vm.c vmm/exit.c vmm/kvm_stats.c vmm/vm_virtio.c \
            vmm/vcpu.c vmm/kvm.c vmm/machine.c \
            vmm/agent_channel.c vmm/sandbox.c vmm/seccomp.c vmm/cgroup.c \
            vmm/snapshot_file.c vmm/snapshot.c
RUNVM_SRCS += $(VMM_SRCS)
RUNVM_LIBS += -lseccomp -lcrypto

# The process confinement, checked in a forked child.
UNIT_TESTS += test_sandbox
test_sandbox_SRCS := vmm/sandbox.c vmm/seccomp.c
test_sandbox_LIBS := -lpthread -lseccomp

# The VM's own cgroup and its supervisor: refusals anywhere, the rest where
# a cgroup2 hierarchy has the controllers (the nested host).
UNIT_TESTS += test_cgroup
test_cgroup_SRCS := vmm/cgroup.c

UNIT_TESTS += test_exit test_kvm_stats
test_exit_SRCS := vmm/exit.c core/bus.c devices/serial.c devices/i8042.c \
                  devices/boot_timer.c core/state.c
test_exit_LIBS := -lpthread
test_kvm_stats_SRCS := vmm/kvm_stats.c

TEST_PROGS += testinit

# VM, vCPU and machine set-up against a fake KVM (open and ioctl wrapped).
UNIT_TESTS += test_vm
test_vm_SRCS = $(VMM_SRCS) $(LEGACY_DEV_SRCS) $(VIRTIO_SRCS) $(CORE_SRCS) \
               $(ARCH_SRCS)
test_vm_LIBS := -lpthread -lseccomp -lcrypto
test_vm_LDFLAGS := -Wl,--wrap=open,--wrap=ioctl,--wrap=arch_check_kvm

# A snapshot's files: the state file's encoding, hostile bytes refused;
# the sparse memory file and its digest; OpenSSL loaded before a seccomp
# filter (libseccomp, in a forked child).
UNIT_TESTS += test_snapshot_file
test_snapshot_file_SRCS := vmm/snapshot_file.c core/state.c
test_snapshot_file_LIBS := -lcrypto -lseccomp
FUZZ_TARGETS += fuzz_snapshot_file
fuzz_snapshot_file_SRCS := vmm/snapshot_file.c core/state.c
fuzz_snapshot_file_LIBS := -lcrypto
