/* The architecture interface: what vmm/ asks of arch/<arch>/ to lay out
 * RAM, create a VM, load a kernel and set up vCPUs. x86-64 implements it
 * in arch/x86_64/; an aarch64 port adds arch/aarch64/ with the same
 * functions and its own struct arch_vm. */
#ifndef RUNVM_ARCH_H
#define RUNVM_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/guest_mem.h"

#if defined(__x86_64__)
#include "arch/x86_64/arch_x86.h"
#else
#error "runvm supports x86-64 only for now"
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

/* Where ram_size bytes of guest RAM go: fills out[0..*n) (at most
 * GM_MAX_REGIONS) in ascending order, around the platform's MMIO holes.
 * 0 or -EINVAL (a size that is zero or not page-aligned). */
int arch_ram_layout(uint64_t ram_size, struct gm_region *out,
                    unsigned int *n) __attribute__((warn_unused_result));

/* Per-VM set-up before memory and vCPUs: in-kernel interrupt controllers,
 * timers and whatever else the arch needs. 0 or -errno, *what naming the
 * step that failed. */
int arch_vm_init(struct arch_vm *arch, int kvm_fd, int vm_fd,
                 const char **what) __attribute__((warn_unused_result));
void arch_vm_free(struct arch_vm *arch);

/* Checks that the kernel file is one this arch can boot, before any KVM
 * set-up, so a wrong file is reported first. 0, or -errno with a one-line
 * message (naming the file) in err. */
int arch_check_kernel(int kernel_fd, uint64_t kernel_size,
                      const char *kernel_path, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Loads kernel, initramfs, command line and firmware tables into guest
 * memory. 0, or -errno with a one-line message (naming the file) in err. */
int arch_load(struct arch_vm *arch, const struct guest_mem *mem,
              const struct arch_boot_files *files, char *err,
              size_t err_len) __attribute__((warn_unused_result));

/* Sets up vCPU index of nr_cpus after arch_load. 0 or -errno + *what. */
int arch_vcpu_init(struct arch_vm *arch, int vcpu_fd, unsigned int index,
                   unsigned int nr_cpus, const char **what)
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
