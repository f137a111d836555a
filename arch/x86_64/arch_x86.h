/* x86-64 state behind arch/arch.h. */
#ifndef RUNVM_ARCH_X86_H
#define RUNVM_ARCH_X86_H

#include <stdint.h>

#include <linux/kvm.h>

#include "core/guest_mem.h"

/* The guest kernel's file, as built (make kernel) and looked for, and
 * what --help says of it. */
#define ARCH_KERNEL_FILE "bzImage"
#define ARCH_KERNEL_HELP "x86-64 bzImage (boot protocol 2.06 or newer)"
/* Whether arch_vm_save and the rest can snapshot a VM. */
#define ARCH_SNAPSHOTS 1
/* How to get a /dev/kvm where there is none. */
#define ARCH_KVM_HINT                                                          \
    "enable hardware virtualization (VT-x/AMD-V, or nested "                   \
    "virtualization in a VM) and load kvm_intel or kvm_amd"

struct arch_vm {
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
    uint64_t entry;           /* 64-bit kernel entry, set by arch_load */
    /* The MSRs a snapshot saves, found at the first arch_vcpu_save. */
    struct kvm_msr_list *msr_index;
};

/* Bytes of RAM below the MMIO hole: the first region of arch_ram_layout's
 * layout, where the kernel, its command line and the initramfs go. */
uint64_t x86_low_ram(const struct guest_mem *mem);

#endif
