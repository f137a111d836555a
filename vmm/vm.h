/* A KVM virtual machine: guest RAM, buses and vCPU threads, served by an
 * event loop the caller owns (so several VMs can share one). Devices
 * attach to it before vm_run; the VM owns nothing a device owns.
 *
 * How a device joins (before vm_run; nothing here is thread-safe until
 * then):
 *   - port I/O or MMIO range: vm_add_pio / vm_add_mmio with bus_dev_ops.
 *     Handlers run on vCPU threads, possibly on several at once: a device
 *     guards its own state.
 *   - a virtio-mmio device: vm_virtio_mmio_slot gives it a window and an
 *     interrupt line and tells the guest of it (vmm/vm_virtio.c does the
 *     rest: vm_add_mmio the window, vm_irqfd its interrupt eventfd and
 *     vm_ioeventfd its QueueNotify register).
 *   - other kernel parameters: cmdline_append(&vm->cmdline, "...").
 *   - back-ends: evloop_add(vm->loop, fd, ...), run on the loop's thread.
 */
#ifndef RUNVM_VM_H
#define RUNVM_VM_H

#include <pthread.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "arch/arch.h"
#include "core/bus.h"
#include "core/evloop.h"
#include "core/guest_mem.h"
#include "vmm/vcpu.h"
#include "vmm/kvm_stats.h"

#define VM_MAX_VCPUS 32

struct boot_timer;

/* Why the VM stopped (first cause wins). */
enum vm_stop {
    VM_RUNNING = 0,
    VM_STOP_GUEST,   /* reset, triple fault, shutdown, panic reboot */
    VM_STOP_TIMEOUT, /* vm_run's timeout passed */
    VM_STOP_SIGNAL,  /* SIGINT/SIGTERM to runvm, or console escape */
    VM_STOP_ERROR,   /* KVM or runvm failed while the guest ran */
    VM_STOP_PAUSE,   /* vm_pause: every vCPU out of KVM_RUN, resumable */
};

/* Guest RAM from a snapshot's memory file, mapped copy-on-write: region
 * i (arch_ram_layout's for the VM's size) holds the file's bytes from
 * offsets[i]. */
struct vm_ram_file {
    int fd;
    unsigned int nr_regions;
    uint64_t offsets[GM_MAX_REGIONS];
};

struct vm {
    int kvm_fd;
    int vm_fd;
    size_t run_size;
    struct arch_vm arch;
    struct guest_mem mem;
    struct bus pio;
    struct bus mmio;
    struct evloop *loop; /* the caller's; device back-ends run on it */
    struct cmdline cmdline;
    unsigned int nr_vcpus;
    struct vcpu vcpus[VM_MAX_VCPUS];
    unsigned int nr_virtio; /* virtio-mmio slots handed out */

    /* Set once by vm_request_stop (atomic). */
    int stop_reason;
    const char *stop_why;
    unsigned long long stop_detail;

    /* Boot timeline, CLOCK_MONOTONIC ns. */
    uint64_t t_start;     /* set by the caller: VMM process start */
    uint64_t t_kvm_ready; /* VM, memory and vCPUs created */
    uint64_t t_first_run; /* first KVM_RUN of the boot vCPU */
    /* KVM's exit counters, opened by vm_count_exits (else source NONE). */
    struct kvm_stats exit_stats;
};

/* Opens /dev/kvm, checks its API and capabilities, creates the VM (its
 * back-ends served by loop, which must outlive it) with
 * mem_size bytes of RAM and nr_cpus vCPUs. 0, or -errno with a one-line
 * message (what failed and how to fix it) in err. On failure the VM is
 * cleaned up. */
int vm_create(struct vm *vm, struct evloop *loop, uint64_t mem_size,
              unsigned int nr_cpus, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* vm_create with RAM mapped from ram (NULL: anonymous, as vm_create),
 * on a duplicate of kvm_fd, an open /dev/kvm (-1: opens it; a sandboxed
 * runvm that makes VMs opens nothing). -EINVAL with a message when ram's
 * region count is not the layout's. */
int vm_create_from(struct vm *vm, struct evloop *loop, uint64_t mem_size,
                   unsigned int nr_cpus, const struct vm_ram_file *ram,
                   int kvm_fd, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Opens KVM's exit counters for this VM's vCPUs (kvm_stats_open: best
 * effort; may_open false under the sandbox) and has timer read them at
 * each guest mark, so exits can be told per boot phase. After vm_create,
 * before vm_run. */
void vm_count_exits(struct vm *vm, struct boot_timer *timer, bool may_open);

/* Loads the kernel and initramfs (arch_load) with vm->cmdline and sets up
 * every vCPU. 0 or -errno with a message in err. */
int vm_load(struct vm *vm, struct arch_boot_files *files, char *err,
            size_t err_len) __attribute__((warn_unused_result));

/* Registers a device range on the port I/O or MMIO bus (see bus_register).
 * MMIO ranges must lie outside RAM. */
int vm_add_pio(struct vm *vm, uint16_t base, uint16_t size,
               const struct bus_dev_ops *ops, void *opaque)
    __attribute__((warn_unused_result));
int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t size,
                const struct bus_dev_ops *ops, void *opaque)
    __attribute__((warn_unused_result));

/* Hands out the next virtio-mmio window and interrupt line
 * (arch_virtio_slot) and tells the guest of it (arch_virtio_announce).
 * Does not register the window. 0, -ENOSPC when all are used or the
 * command line is full. */
int vm_virtio_mmio_slot(struct vm *vm, struct arch_place *slot)
    __attribute__((warn_unused_result));

/* Every write of a nonzero count to eventfd fd raises interrupt line gsi
 * (an edge), without a trip through runvm (KVM_IRQFD). 0 or -errno. */
int vm_irqfd(struct vm *vm, int fd, unsigned int gsi)
    __attribute__((warn_unused_result));

/* A guest write of len bytes (1, 2, 4 or 8) to MMIO address addr signals
 * eventfd fd instead of exiting to runvm (KVM_IOEVENTFD). With match, only
 * writes of value do. 0 or -errno. */
int vm_ioeventfd(struct vm *vm, int fd, uint64_t addr, uint32_t len, int match,
                 uint64_t value) __attribute__((warn_unused_result));

/* Sets interrupt line irq to level (KVM_IRQ_LINE). Thread-safe. */
int vm_irq_line(struct vm *vm, unsigned int irq, int level);

/* Starts the vCPU threads and runs the event loop on the calling thread
 * until the VM stops (vm_request_stop ends the loop's run), timeout_ms
 * passes (-1: none) or another user of the loop ends its run
 * (VM_STOP_ERROR), then stops and joins every vCPU. Returns the enum
 * vm_stop reason. */
enum vm_stop vm_run(struct vm *vm, int timeout_ms);

/* Asks the VM to pause: vm_run returns VM_STOP_PAUSE with every vCPU
 * thread joined, and may be called again to go on. Loop thread only. */
void vm_pause(struct vm *vm);

/* After vm_run returned VM_STOP_PAUSE: every vCPU completes the exit it
 * was in (an MMIO or port read's value goes into its registers), so what
 * vm_save reads is whole. 0 or -errno with a message in err. */
int vm_quiesce(struct vm *vm, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* A quiesced VM's KVM state (arch_vm_save) into vm_state and each
 * vCPU's (arch_vcpu_save) into vcpu_state[0..nr_vcpus). 0 or -errno with
 * a message in err. */
int vm_save(struct vm *vm, struct state_w *vm_state, struct state_w *vcpu_state,
            char *err, size_t err_len) __attribute__((warn_unused_result));

/* Writes what vm_save read into a VM fresh from vm_create_from (same
 * size and vCPU count, no vm_load). 0 or -errno with a message in err. */
int vm_restore(struct vm *vm, struct state_r *vm_state,
               struct state_r *vcpu_state, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Whether a stop was requested. Thread-safe. */
int vm_stopped(const struct vm *vm);

/* Asks the VM to stop; thread- and async-signal-safe apart from the
 * signal kicks. The first reason given is kept. */
void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *why,
                     unsigned long long detail);

/* Releases everything vm_create acquired. Safe after a failed create. */
void vm_destroy(struct vm *vm);

#endif
