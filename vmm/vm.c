#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/exit.h"

#define KVM_DEVICE "/dev/kvm"
/* Signal that kicks a vCPU thread out of KVM_RUN. */
#define VCPU_KICK_SIGNAL SIGUSR1

/* What any runvm VM needs; the arch adds its own (arch_kvm_caps). */
static const struct arch_kvm_cap generic_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {0, NULL},
};

/* 0, or -ENOTSUP with the first missing capability named in err. */
static int check_caps(int kvm_fd, const struct arch_kvm_cap *caps, char *err,
                      size_t err_len)
{
    for (; caps->name; caps++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps->cap) <= 0) {
            snprintf(err, err_len, KVM_DEVICE ": the host kernel lacks %s; "
                     "runvm needs a newer KVM", caps->name);
            return -ENOTSUP;
        }
    }
    return 0;
}

static int open_kvm(char *err, size_t err_len)
{
    int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    switch (e) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
        snprintf(err, err_len, KVM_DEVICE ": %s — KVM is not available: "
                 "enable hardware virtualization (VT-x/AMD-V, or nested "
                 "virtualization in a VM) and load kvm_intel or kvm_amd",
                 strerror(e));
        break;
    case EACCES:
    case EPERM:
        snprintf(err, err_len, KVM_DEVICE ": permission denied — add "
                 "yourself to the kvm group (sudo usermod -aG kvm $USER, "
                 "then log in again)");
        break;
    default:
        snprintf(err, err_len, KVM_DEVICE ": %s", strerror(e));
        break;
    }
    return -e;
}

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
            snprintf(err, err_len, "KVM_SET_USER_MEMORY_REGION (slot %u, "
                     "%llu MiB at 0x%llx): %s", i,
                     (unsigned long long)(r->size >> 20),
                     (unsigned long long)r->gpa, strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_create(struct vm *vm, uint64_t mem_size, unsigned int nr_cpus,
              char *err, size_t err_len)
{
    uint64_t t_start = vm->t_start;
    memset(vm, 0, sizeof(*vm));
    vm->t_start = t_start;
    vm->kvm_fd = vm->vm_fd = -1;
    vm->loop.epfd = vm->loop.stop_fd = -1;
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
    ret = open_kvm(err, err_len);
    if (ret < 0)
        return ret;
    vm->kvm_fd = ret;
    ret = arch_check_kvm(err, err_len);
    if (ret < 0)
        goto fail;
    int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        snprintf(err, err_len, KVM_DEVICE ": KVM API version %d, runvm "
                 "needs %d", api, KVM_API_VERSION);
        ret = -ENOTSUP;
        goto fail;
    }
    ret = check_caps(vm->kvm_fd, generic_caps, err, err_len);
    if (ret == 0)
        ret = check_caps(vm->kvm_fd, arch_kvm_caps(), err, err_len);
    if (ret < 0)
        goto fail;
    int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && nr_cpus > (unsigned int)max_vcpus) {
        snprintf(err, err_len, "%u vCPUs: this host's KVM allows at most %d",
                 nr_cpus, max_vcpus);
        ret = -EINVAL;
        goto fail;
    }
    int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run)) {
        snprintf(err, err_len, "KVM_GET_VCPU_MMAP_SIZE: %s",
                 run_size < 0 ? strerror(errno) : "too small");
        ret = -EINVAL;
        goto fail;
    }
    vm->run_size = (size_t)run_size;

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
    if (ret == 0)
        ret = gm_init_regions(&vm->mem, layout, nr_regions);
    if (ret < 0) {
        snprintf(err, err_len, "cannot map %llu MiB of guest RAM: %s",
                 (unsigned long long)(mem_size >> 20), strerror(-ret));
        goto fail;
    }
    ret = vm_set_memory(vm, err, err_len);
    if (ret < 0)
        goto fail;
    for (unsigned int i = 0; i < nr_cpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        v->vm = vm;
        v->index = i;
        v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
        if (v->fd < 0) {
            ret = -errno;
            snprintf(err, err_len, "KVM_CREATE_VCPU %u: %s", i,
                     strerror(-ret));
            goto fail;
        }
        vm->nr_vcpus = i + 1;
        void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
                         MAP_SHARED, v->fd, 0);
        if (run == MAP_FAILED) {
            ret = -errno;
            snprintf(err, err_len, "mmap of vCPU %u's kvm_run: %s", i,
                     strerror(-ret));
            goto fail;
        }
        v->run = run;
    }
    ret = evloop_init(&vm->loop);
    if (ret < 0) {
        snprintf(err, err_len, "event loop: %s", strerror(-ret));
        goto fail;
    }
    vm->t_kvm_ready = boot_timer_now_ns();
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

void vm_count_exits(struct vm *vm)
{
    int fds[VM_MAX_VCPUS];
    for (unsigned int i = 0; i < vm->nr_vcpus; i++)
        fds[i] = vm->vcpus[i].fd;
    kvm_stats_open(&vm->exit_stats, vm->kvm_fd, vm->vm_fd, fds, vm->nr_vcpus);
    if (vm->exit_stats.source == KVM_STATS_NONE)
        return;
    vm->timer.read_counters = read_exit_counts;
    vm->timer.counters_ctx = &vm->exit_stats;
    vm->timer.nr_counters = KVM_STAT_COUNT;
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
        ret = arch_vcpu_init(&vm->arch, vm->vcpus[i].fd, i, vm->nr_vcpus,
                             &what);
        if (ret < 0) {
            snprintf(err, err_len, "vCPU %u: %s: %s", i, what,
                     strerror(-ret));
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

int vm_ioeventfd(struct vm *vm, int fd, uint64_t addr, uint32_t len,
                 int match, uint64_t value)
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

static int vm_stopping(const struct vm *vm)
{
    return __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != VM_RUNNING;
}

static void vm_kick_vcpus(struct vm *vm)
{
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        if (!__atomic_load_n(&v->thread_started, __ATOMIC_ACQUIRE))
            continue;
        /* immediate_exit covers a thread about to enter KVM_RUN; the
         * signal one already inside it. */
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
        pthread_kill(v->thread, VCPU_KICK_SIGNAL);
    }
}

void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *why,
                     unsigned long long detail)
{
    int expected = VM_RUNNING;
    if (!__atomic_compare_exchange_n(&vm->stop_reason, &expected,
                                     (int)reason, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    /* Only the winner writes these; they are read after every vCPU thread
     * is joined. */
    vm->stop_why = why;
    vm->stop_detail = detail;
    evloop_stop(&vm->loop);
    vm_kick_vcpus(vm);
}

/* Where a vCPU was when KVM gave up on it, for the user's report: the
 * arch's register summary and KVM's own data of an internal error (for an
 * emulation failure, the instruction bytes where the kernel supplies
 * them). */
static void vcpu_report_error(const struct vcpu *v)
{
    arch_vcpu_dump(v->fd, v->index, stderr);
    if (v->run->exit_reason != KVM_EXIT_INTERNAL_ERROR)
        return;
    unsigned int n = v->run->internal.ndata;
    if (n > sizeof(v->run->internal.data) / sizeof(v->run->internal.data[0]))
        n = sizeof(v->run->internal.data) / sizeof(v->run->internal.data[0]);
    fprintf(stderr, "runvm: vCPU %u: internal error %u, data:", v->index,
            v->run->internal.suberror);
    for (unsigned int i = 0; i < n; i++)
        fprintf(stderr, " 0x%llx",
                (unsigned long long)v->run->internal.data[i]);
    fputc('\n', stderr);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct vm *vm = v->vm;
    struct exit_ctx ctx = {&vm->pio, &vm->mmio, vm->run_size};
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    while (!vm_stopping(vm)) {
        if (v->index == 0 && vm->t_first_run == 0)
            vm->t_first_run = boot_timer_now_ns();
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            vm_request_stop(vm, VM_STOP_ERROR, "KVM_RUN failed",
                            (unsigned long long)errno);
            break;
        }
        struct exit_result res = exit_handle(&ctx, v->run);
        if (res.action == EXIT_STOP) {
            vm_request_stop(vm, VM_STOP_GUEST, res.why, res.detail);
            break;
        }
        if (res.action == EXIT_ERROR) {
            vcpu_report_error(v);
            vm_request_stop(vm, VM_STOP_ERROR, res.why, res.detail);
            break;
        }
    }
    return NULL;
}

static void vcpu_kick_handler(int sig)
{
    (void)sig; /* only there to make KVM_RUN return EINTR */
}

enum vm_stop vm_run(struct vm *vm, int timeout_ms)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = vcpu_kick_handler; /* no SA_RESTART: interrupt ioctls */
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
    /* Threads start with the kick blocked and unblock it themselves. */
    sigset_t kick, old;
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &kick, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* vCPU threads run little C; keep their stacks small. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        int ret = pthread_create(&v->thread, &attr, vcpu_thread, v);
        if (ret != 0) {
            vm_request_stop(vm, VM_STOP_ERROR, "cannot start vCPU thread",
                            (unsigned long long)ret);
            break;
        }
        __atomic_store_n(&v->thread_started, 1, __ATOMIC_RELEASE);
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (!vm_stopping(vm)) {
        int ret = evloop_run(&vm->loop, timeout_ms);
        if (ret == -ETIMEDOUT)
            vm_request_stop(vm, VM_STOP_TIMEOUT, "--timeout passed",
                            (unsigned long long)timeout_ms);
        else if (ret < 0)
            vm_request_stop(vm, VM_STOP_ERROR, "event loop failed",
                            (unsigned long long)-ret);
    }
    /* A thread started after the stop was requested was not kicked. A
     * halted vCPU has been seen (nested KVM) to sleep through one kick, so
     * keep kicking until each thread is gone rather than trusting one. */
    vm_kick_vcpus(vm);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        if (!v->thread_started)
            continue;
        for (;;) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (pthread_timedjoin_np(v->thread, NULL, &until) != ETIMEDOUT)
                break;
            vm_kick_vcpus(vm);
        }
        v->thread_started = 0;
    }
    return (enum vm_stop)__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE);
}

void vm_destroy(struct vm *vm)
{
    kvm_stats_close(&vm->exit_stats);
    for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        if (v->run)
            munmap(v->run, vm->run_size);
        if (v->fd >= 0)
            close(v->fd);
        v->run = NULL;
        v->fd = -1;
    }
    vm->nr_vcpus = 0;
    evloop_free(&vm->loop);
    arch_vm_free(&vm->arch);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    gm_free(&vm->mem);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    vm->vm_fd = vm->kvm_fd = -1;
}
