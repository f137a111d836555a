/* aarch64 state behind arch/arch.h. */
#ifndef RUNVM_ARCH_ARM64_H
#define RUNVM_ARCH_ARM64_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "arch/aarch64/fdt.h"
#include "arch/aarch64/layout.h"

/* The guest kernel's file, as built (make kernel ARCH=aarch64) and
 * looked for, and what --help says of it. */
#define ARCH_KERNEL_FILE "Image"
#define ARCH_KERNEL_HELP "arm64 Image, uncompressed (arch/arm64/boot/Image)"
/* Whether arch_vm_save and the rest can snapshot a VM: not yet
 * (docs/aarch64.md §5 has what they need), so --lang boots cold. */
#define ARCH_SNAPSHOTS 0
/* How to get a /dev/kvm where there is none. */
#define ARCH_KVM_HINT                                                          \
    "the host kernel must start at EL2 with KVM built in (a VM needs "         \
    "nested virtualization: QEMU's virtualization=on)"

struct arch_vm {
    /* The in-kernel GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3), where has_gic: a
     * struct arch_vm zeroed by vmm/ before arch_vm_init holds none. */
    bool has_gic;
    int gic_fd;
    struct kvm_vcpu_init init; /* KVM's preferred target, our features */
    /* The virtio-mmio devices announced, for the device tree. */
    struct arm64_fdt_dev virtio[ARM64_VIRTIO_MAX];
    unsigned int nr_virtio;
    uint64_t entry;    /* the kernel's first instruction, set by arch_load */
    uint64_t fdt_addr; /* the device tree's guest address */
};

/* A core register's KVM_{GET,SET}_ONE_REG id: field of struct kvm_regs. */
#define ARM64_CORE_REG(field)                                                  \
    (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                     \
     KVM_REG_ARM_CORE_REG(field))

/* One 64-bit register of a vCPU. 0 or -errno. */
static inline int arm64_get_reg(int vcpu_fd, uint64_t id, uint64_t *v)
{
    struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)v};
    return ioctl(vcpu_fd, KVM_GET_ONE_REG, &reg) < 0 ? -errno : 0;
}

static inline int arm64_set_reg(int vcpu_fd, uint64_t id, uint64_t v)
{
    struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)&v};
    return ioctl(vcpu_fd, KVM_SET_ONE_REG, &reg) < 0 ? -errno : 0;
}

#endif
