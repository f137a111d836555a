#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/clock.h"
#include "devices/boot_timer.h"
#include "vmm/kvm.h"

static int vm_set_memory(struct vm *vm, char *err, size_t err_len)
{
    for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
        const struct gm_region *r = &vm->mem.regions[i];
        struct kvm_userspace_memory_region slot = {
            .slot = i,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->hva,
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
            int ret = -errno;
            snprintf(err, err_len,
                     "KVM_SET_USER_MEMORY_REGION (slot %u, "
                     "%llu MiB at 0x%llx): %s",
                     i, (unsigned long long)(r->size >> 20),
                     (unsigned long long)r->gpa, strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_create(struct vm *vm, struct evloop *loop, uint64_t mem_size,
              unsigned int nr_cpus, char *err, size_t err_len)
{
    return vm_create_from(vm, loop, mem_size, nr_cpus, NULL, -1, err, err_len);
}

int vm_create_from(struct vm *vm, struct evloop *loop, uint64_t mem_size,
                   unsigned int nr_cpus, const struct vm_ram_file *ram,
                   int kvm_fd, char *err, size_t err_len)
{
    uint64_t t_start = vm->t_start;
    memset(vm, 0, sizeof(*vm));
    vm->t_start = t_start;
    vm->loop = loop;
    vm->kvm_fd = vm->vm_fd = -1;
    for (unsigned int i = 0; i < VM_MAX_VCPUS; i++)
        vm->vcpus[i].fd = -1;
    cmdline_init(&vm->cmdline);
    int ret;
    const char *what = NULL;

    if (nr_cpus == 0 || nr_cpus > VM_MAX_VCPUS) {
        snprintf(err, err_len, "%u vCPUs: runvm supports 1 to %u", nr_cpus,
                 VM_MAX_VCPUS);
        return -EINVAL;
    }
    if (kvm_fd >= 0) {
        ret = fcntl(kvm_fd, F_DUPFD_CLOEXEC, 0);
        if (ret < 0) {
            ret = -errno;
            snprintf(err, err_len, "/dev/kvm: %s", strerror(-ret));
        }
    } else {
        ret = kvm_open(err, err_len);
    }
    if (ret < 0)
        return ret;
    vm->kvm_fd = ret;
    ret = kvm_check(vm->kvm_fd, nr_cpus, &vm->run_size, err, err_len);
    if (ret < 0)
        goto fail;

    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        ret = -errno;
        snprintf(err, err_len, "KVM_CREATE_VM: %s", strerror(-ret));
        goto fail;
    }
    ret = arch_vm_init(&vm->arch, vm->kvm_fd, vm->vm_fd, &what);
    if (ret < 0) {
        snprintf(err, err_len, "%s: %s", what, strerror(-ret));
        goto fail;
    }
    struct gm_region layout[GM_MAX_REGIONS];
    unsigned int nr_regions;
    ret = arch_ram_layout(mem_size, layout, &nr_regions);
    if (ret == 0 && ram && ram->nr_regions != nr_regions) {
        snprintf(err, err_len,
                 "the memory file has %u RAM regions, %llu MiB of RAM "
                 "has %u here",
                 ram->nr_regions, (unsigned long long)(mem_size >> 20),
                 nr_regions);
        ret = -EINVAL;
        goto fail;
    }
    if (ret == 0)
        ret = ram ? gm_init_file(&vm->mem, layout, nr_regions, ram->fd,
                                 ram->offsets)
                  : gm_init_regions(&vm->mem, layout, nr_regions);
    if (ret < 0) {
        snprintf(err, err_len, "cannot map %llu MiB of guest RAM: %s",
                 (unsigned long long)(mem_size >> 20), strerror(-ret));
        goto fail;
    }
    ret = vm_set_memory(vm, err, err_len);
    if (ret < 0)
        goto fail;
    for (unsigned int i = 0; i < nr_cpus; i++) {
        vm->nr_vcpus = i + 1;
        ret = vcpu_create(&vm->vcpus[i], vm, vm->vm_fd, i, vm->run_size, err,
                          err_len);
        if (ret < 0)
            goto fail;
    }
    int fds[VM_MAX_VCPUS];
    for (unsigned int i = 0; i < nr_cpus; i++)
        fds[i] = vm->vcpus[i].fd;
    ret = arch_vcpus_created(&vm->arch, vm->vm_fd, fds, nr_cpus, &what);
    if (ret < 0) {
        snprintf(err, err_len, "%s: %s", what, strerror(-ret));
        goto fail;
    }
    vm->t_kvm_ready = clock_now_ns();
    return 0;
fail:
    vm_destroy(vm);
    return ret;
}

_Static_assert(VM_MAX_VCPUS <= KVM_STATS_MAX_VCPUS,
               "every vCPU's exit counters fit in struct kvm_stats");
_Static_assert(KVM_STAT_COUNT <= BOOT_TIMER_MAX_COUNTERS,
               "the boot timer keeps every exit counter");

/* The boot timer's counter reader: KVM's exit counts, all vCPUs. */
static int read_exit_counts(void *ctx, uint64_t *out, unsigned int nr)
{
    uint64_t v[KVM_STAT_COUNT];
    int ret = kvm_stats_read(ctx, v);
    if (ret < 0)
        return ret;
    memcpy(out, v, sizeof(v[0]) * (nr < KVM_STAT_COUNT ? nr : KVM_STAT_COUNT));
    return 0;
}

void vm_count_exits(struct vm *vm, struct boot_timer *timer, bool may_open)
{
    int fds[VM_MAX_VCPUS];
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        fds[i] = vm->vcpus[i].fd;
    kvm_stats_open(&vm->exit_stats, vm->kvm_fd, vm->vm_fd, fds, vm->nr_vcpus,
                   may_open);
    if (vm->exit_stats.source == KVM_STATS_NONE)
        return;
    timer->read_counters = read_exit_counts;
    timer->counters_ctx = &vm->exit_stats;
    timer->nr_counters = KVM_STAT_COUNT;
}

int vm_load(struct vm *vm, struct arch_boot_files *files, char *err,
            size_t err_len)
{
    files->cmdline = vm->cmdline.buf;
    files->nr_cpus = vm->nr_vcpus;
    int ret = arch_load(&vm->arch, &vm->mem, files, err, err_len);
    if (ret < 0)
        return ret;
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        const char *what = "vCPU set-up";
        ret =
            arch_vcpu_init(&vm->arch, vm->vcpus[i].fd, i, vm->nr_vcpus, &what);
        if (ret < 0) {
            snprintf(err, err_len, "vCPU %u: %s: %s", i, what, strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_add_pio(struct vm *vm, uint16_t base, uint16_t size,
               const struct bus_dev_ops *ops, void *opaque)
{
    if ((uint32_t)base + size > 0x10000)
        return -EINVAL;
    return bus_register(&vm->pio, base, size, ops, opaque);
}

int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t size,
                const struct bus_dev_ops *ops, void *opaque)
{
    uint64_t end;
    if (__builtin_add_overflow(base, size, &end))
        return -EINVAL;
    /* Inside RAM, KVM would never exit for it: refuse. */
    for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
        const struct gm_region *r = &vm->mem.regions[i];
        if (base < r->gpa + r->size && end > r->gpa)
            return -EINVAL;
    }
    return bus_register(&vm->mmio, base, size, ops, opaque);
}

int vm_virtio_mmio_slot(struct vm *vm, struct arch_place *slot)
{
    int ret = arch_virtio_slot(vm->nr_virtio, slot);
    if (ret == 0)
        ret = arch_virtio_announce(&vm->arch, &vm->cmdline, slot);
    if (ret < 0)
        return ret;
    vm->nr_virtio++;
    return 0;
}

int vm_irqfd(struct vm *vm, int fd, unsigned int gsi)
{
    struct kvm_irqfd irqfd = {.fd = (uint32_t)fd, .gsi = gsi};
    return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_ioeventfd(struct vm *vm, int fd, uint64_t addr, uint32_t len, int match,
                 uint64_t value)
{
    struct kvm_ioeventfd io = {
        .datamatch = match ? value : 0,
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0,
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int vm_irq_line(struct vm *vm, unsigned int irq, int level)
{
    struct kvm_irq_level line = {.irq = irq, .level = (uint32_t)level};
    return ioctl(vm->vm_fd, KVM_IRQ_LINE, &line) < 0 ? -errno : 0;
}

/* Records the first stop reason; true for the call that did. A pause is
 * only a pause: any real stop asked for at the same time wins over it, so
 * a guest that reset while being paused is not run again. */
static bool mark_stop(struct vm *vm, enum vm_stop reason, const char *why,
                      unsigned long long detail)
{
    int expected = VM_RUNNING;
    while (!__atomic_compare_exchange_n(&vm->stop_reason, &expected,
                                        (int)reason, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
        if (expected != VM_STOP_PAUSE || reason == VM_STOP_PAUSE)
            return false;
    }
    /* Only the winner writes these; they are read after every vCPU thread
     * is joined. */
    vm->stop_why = why;
    vm->stop_detail = detail;
    return true;
}

void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *why,
                     unsigned long long detail)
{
    if (!mark_stop(vm, reason, why, detail))
        return;
    evloop_stop(vm->loop);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
}

void vm_pause(struct vm *vm)
{
    vm_request_stop(vm, VM_STOP_PAUSE, "paused", 0);
}

int vm_quiesce(struct vm *vm, char *err, size_t err_len)
{
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        int ret = vcpu_complete_io(&vm->vcpus[i]);
        if (ret < 0) {
            snprintf(err, err_len, "vCPU %u: completing its last exit: %s", i,
                     strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_save(struct vm *vm, struct state_w *vm_state, struct state_w *vcpu_state,
            char *err, size_t err_len)
{
    const char *what = "VM state";
    int ret = arch_vm_save(&vm->arch, vm->vm_fd, vm_state, &what);
    if (ret < 0) {
        snprintf(err, err_len, "saving the VM: %s: %s", what, strerror(-ret));
        return ret;
    }
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        what = "vCPU state";
        ret = arch_vcpu_save(&vm->arch, vm->kvm_fd, vm->vcpus[i].fd,
                             &vcpu_state[i], &what);
        if (ret < 0) {
            snprintf(err, err_len, "saving vCPU %u: %s: %s", i, what,
                     strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_restore(struct vm *vm, struct state_r *vm_state,
               struct state_r *vcpu_state, char *err, size_t err_len)
{
    const char *what = "VM state";
    int ret = arch_vm_restore(&vm->arch, vm->vm_fd, vm_state, &what);
    if (ret < 0) {
        snprintf(err, err_len, "restoring the VM: %s: %s", what,
                 ret == -EBADMSG ? "malformed" : strerror(-ret));
        return ret;
    }
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        char why[200];
        ret = arch_vcpu_restore(&vm->arch, vm->vcpus[i].fd, &vcpu_state[i], why,
                                sizeof(why));
        if (ret < 0) {
            snprintf(err, err_len, "restoring vCPU %u: %s", i, why);
            return ret;
        }
    }
    return 0;
}

int vm_stopped(const struct vm *vm)
{
    return __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != VM_RUNNING;
}

enum vm_stop vm_run(struct vm *vm, int timeout_ms)
{
    /* Going on after a pause. */
    int paused = VM_STOP_PAUSE;
    __atomic_compare_exchange_n(&vm->stop_reason, &paused, VM_RUNNING, 0,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        int ret = vcpu_start(&vm->vcpus[i]);
        if (ret < 0) {
            vm_request_stop(vm, VM_STOP_ERROR, "cannot start vCPU thread",
                            (unsigned long long)-ret);
            break;
        }
    }
    if (!vm_stopped(vm)) {
        int ret = evloop_run(vm->loop, timeout_ms);
        if (ret == -ETIMEDOUT)
            vm_request_stop(vm, VM_STOP_TIMEOUT, "--timeout passed",
                            (unsigned long long)timeout_ms);
        else if (ret < 0)
            vm_request_stop(vm, VM_STOP_ERROR, "event loop failed",
                            (unsigned long long)-ret);
        else if (!vm_stopped(vm))
            /* Another user of the loop stopped it: the VM ends with the
             * run, and no stop is left pending for the loop's next one. */
            (void)mark_stop(vm, VM_STOP_ERROR, "event loop stopped", 0);
    }
    /* A thread started after the stop was requested was not kicked:
     * vcpu_join kicks until each is gone. */
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        vcpu_join(&vm->vcpus[i]);
    return (enum vm_stop)__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE);
}

void vm_destroy(struct vm *vm)
{
    kvm_stats_close(&vm->exit_stats);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        vcpu_destroy(&vm->vcpus[i]);
    vm->nr_vcpus = 0;
    arch_vm_free(&vm->arch);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    gm_free(&vm->mem);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    vm->vm_fd = vm->kvm_fd = -1;
}
