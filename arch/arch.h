/* The architecture interface: what vmm/ asks of arch/<arch>/ to lay out
 * RAM, create a VM, load a kernel and set up vCPUs. x86-64 implements it
 * in arch/x86_64/; arch/aarch64/ has the same
 * functions and its own struct arch_vm. */
#ifndef RUNVM_ARCH_H
#define RUNVM_ARCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/cmdline.h"
#include "core/guest_mem.h"
#include "core/state.h"

#if defined(__x86_64__)
#include "arch/x86_64/arch_x86.h"
#elif defined(__aarch64__)
#include "arch/aarch64/arch_arm64.h"
#else
#error "runvm supports x86-64 and aarch64"
#endif

/* The kernel and initramfs to boot, already opened by the caller. */
struct arch_boot_files {
    const char *kernel_path;
    int kernel_fd;
    uint64_t kernel_size;
    const char *initrd_path;
    int initrd_fd;
    uint64_t initrd_size;
    const char *cmdline;
    unsigned int nr_cpus;
};

/* A KVM capability the platform cannot do without. */
struct arch_kvm_cap {
    long cap;
    const char *name;
};

enum arch_bus { ARCH_BUS_NONE = 0, ARCH_BUS_PIO, ARCH_BUS_MMIO };

/* Where a device sits: a range on one of the buses and its interrupt
 * line (0: none). */
struct arch_place {
    enum arch_bus bus;
    uint64_t base;
    uint64_t size;
    unsigned int irq;
};

/* The platform's own devices, which vmm/ creates from devices/' models.
 * A place whose bus is ARCH_BUS_NONE does not exist on this arch. */
struct arch_platform {
    struct arch_place uart;       /* 16550A-compatible, the kernel log */
    struct arch_place reset;      /* an i8042 for the guest's reset line
                                   * (reboot=k), where the platform has one */
    struct arch_place boot_timer; /* a guest write records a timestamp */
    const char *console_param;    /* kernel parameter for the UART */
};

/* The KVM capabilities arch_vm_init and arch_vcpu_init rely on, ended by
 * a {0, NULL} entry (the generic ones are vmm/'s to check). */
const struct arch_kvm_cap *arch_kvm_caps(void);

/* This platform's devices. */
const struct arch_platform *arch_platform(void);

/* The window and interrupt of the nth virtio-mmio device (from 0). 0, or
 * -ENOSPC past the last one. */
int arch_virtio_slot(unsigned int n, struct arch_place *out)
    __attribute__((warn_unused_result));

/* Tells the guest kernel of the virtio-mmio device at slot: on x86 a
 * virtio_mmio.device= parameter on cmdline; a device-tree arch records it
 * in arch for arch_load instead. Before arch_load. 0 or -ENOSPC. */
int arch_virtio_announce(struct arch_vm *arch, struct cmdline *cmdline,
                         const struct arch_place *slot)
    __attribute__((warn_unused_result));

/* One line on f placing a vCPU that KVM gave up on (mode, paging,
 * instruction pointer), read through its fd. Nothing if unreadable. */
void arch_vcpu_dump(int vcpu_fd, unsigned int index, FILE *f);

/* Where ram_size bytes of guest RAM go: fills out[0..*n) (at most
 * GM_MAX_REGIONS) in ascending order, around the platform's MMIO holes.
 * 0 or -EINVAL (a size that is zero or not page-aligned). */
int arch_ram_layout(uint64_t ram_size, struct gm_region *out, unsigned int *n)
    __attribute__((warn_unused_result));

/* Per-VM set-up before memory and vCPUs: in-kernel interrupt controllers,
 * timers and whatever else the arch needs. 0 or -errno, *what naming the
 * step that failed. */
int arch_vm_init(struct arch_vm *arch, int kvm_fd, int vm_fd, const char **what)
    __attribute__((warn_unused_result));
void arch_vm_free(struct arch_vm *arch);

/* Once all nr vCPUs exist, before anything runs or is restored: on aarch64
 * each vCPU's KVM_ARM_VCPU_INIT and the vGIC's finalisation (its
 * redistributors follow the vCPU count); nothing on x86. 0 or -errno +
 * *what. */
int arch_vcpus_created(struct arch_vm *arch, int vm_fd, const int *vcpu_fds,
                       unsigned int nr, const char **what)
    __attribute__((warn_unused_result));

/* Checks that the kernel file is one this arch can boot, before any KVM
 * set-up, so a wrong file is reported first. 0, or -errno with a one-line
 * message (naming the file) in err. */
int arch_check_kernel(int kernel_fd, uint64_t kernel_size,
                      const char *kernel_path, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Loads kernel, initramfs, command line and firmware tables into guest
 * memory. 0, or -errno with a one-line message (naming the file) in err. */
int arch_load(struct arch_vm *arch, const struct guest_mem *mem,
              const struct arch_boot_files *files, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Sets up vCPU index of nr_cpus after arch_load. 0 or -errno + *what. */
int arch_vcpu_init(struct arch_vm *arch, int vcpu_fd, unsigned int index,
                   unsigned int nr_cpus, const char **what)
    __attribute__((warn_unused_result));

/* Snapshots (vmm/snapshot.c): the arch's share of a VM whose vCPUs are
 * all stopped out of KVM_RUN with nothing pending, as bytes.
 *
 * arch_vm_save: interrupt controllers, timers and the guest's clock.
 * arch_vm_restore: writes them into a VM fresh from arch_vm_init, before
 * its vCPUs' state. 0, or -errno (-EBADMSG: bytes malformed) with *what
 * naming the step. */
int arch_vm_save(struct arch_vm *arch, int vm_fd, struct state_w *w,
                 const char **what) __attribute__((warn_unused_result));
int arch_vm_restore(struct arch_vm *arch, int vm_fd, struct state_r *r,
                    const char **what) __attribute__((warn_unused_result));

/* arch_vcpu_save: one vCPU's whole state (registers, FPU and extended
 * state, MSRs, LAPIC, pending events, MP state, CPUID, TSC rate).
 * arch_vcpu_restore: into a vCPU fresh from KVM_CREATE_VCPU (no
 * arch_vcpu_init), after checking this host can run it. 0, or -errno with
 * a one-line message in err: -EBADMSG malformed, -ENOTSUP this host lacks
 * what the guest uses. */
int arch_vcpu_save(struct arch_vm *arch, int kvm_fd, int vcpu_fd,
                   struct state_w *w, const char **what)
    __attribute__((warn_unused_result));
int arch_vcpu_restore(struct arch_vm *arch, int vcpu_fd, struct state_r *r,
                      char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Checks that this host's KVM can boot a Linux guest: on x86, that the
 * CPU has VMX or SVM, without which /dev/kvm is a software KVM
 * (kvm-pvm) that cannot run an unmodified kernel. 0, or -ENOTSUP with a
 * one-line message in err. */
int arch_check_kvm(char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Largest vCPU count the arch's firmware tables describe. */
unsigned int arch_max_cpus(void);

/* Smallest guest RAM the arch can boot a kernel in, in bytes. */
uint64_t arch_min_mem(void);

#endif
