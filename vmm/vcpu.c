#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/clock.h"
#include "vmm/exit.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

/* Signal that kicks a vCPU thread out of KVM_RUN. Its handler is the
 * process's, the same for every VM: it only makes KVM_RUN return EINTR. */
#define VCPU_KICK_SIGNAL SIGUSR1
#define VCPU_STACK_SIZE  (256 * 1024) /* vCPU threads run little C */

int vcpu_create(struct vcpu *v, struct vm *vm, int vm_fd, unsigned int index,
                size_t run_size, char *err, size_t err_len)
{
    *v =
        (struct vcpu){.vm = vm, .index = index, .fd = -1, .run_size = run_size};
    v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (v->fd < 0) {
        int ret = -errno;
        snprintf(err, err_len, "KVM_CREATE_VCPU %u: %s", index, strerror(-ret));
        return ret;
    }
    void *run =
        mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (run == MAP_FAILED) {
        int ret = -errno;
        snprintf(err, err_len, "mmap of vCPU %u's kvm_run: %s", index,
                 strerror(-ret));
        return ret;
    }
    v->run = run;
    return 0;
}

/* Where a vCPU was when KVM gave up on it, for the user's report: the
 * arch's register summary and KVM's own data of an internal error (for an
 * emulation failure, the instruction bytes where the kernel supplies
 * them). */
static void report_error(const struct vcpu *v)
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
    struct exit_ctx ctx = {&vm->pio, &vm->mmio, v->run_size};
    sigset_t kick;
    char err[160];
    if (sandbox_seccomp(SANDBOX_VCPU, err, sizeof(err)) < 0) {
        fprintf(stderr, "runvm: vCPU %u: %s\n", v->index, err);
        vm_request_stop(vm, VM_STOP_ERROR, "vCPU sandbox", 0);
        return NULL;
    }
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    while (!vm_stopped(vm)) {
        if (v->index == 0 && vm->t_first_run == 0)
            vm->t_first_run = clock_now_ns();
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
            report_error(v);
            vm_request_stop(vm, VM_STOP_ERROR, res.why, res.detail);
            break;
        }
    }
    return NULL;
}

static void kick_handler(int sig)
{
    (void)sig; /* only there to make KVM_RUN return EINTR */
}

int vcpu_start(struct vcpu *v)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler; /* no SA_RESTART: interrupt ioctls */
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
    /* A kick that ended an earlier run (vm_pause) left this set. */
    __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
    /* The thread starts with the kick blocked and unblocks it itself. */
    sigset_t kick, old;
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &kick, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, VCPU_STACK_SIZE);
    int ret = pthread_create(&v->thread, &attr, vcpu_thread, v);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0)
        return -ret;
    __atomic_store_n(&v->thread_started, 1, __ATOMIC_RELEASE);
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    if (!__atomic_load_n(&v->thread_started, __ATOMIC_ACQUIRE))
        return;
    /* immediate_exit covers a thread about to enter KVM_RUN; the signal
     * one already inside it. */
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
    pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
    if (!v->thread_started)
        return;
    for (;;) {
        vcpu_kick(v);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(v->thread, NULL, &until) != ETIMEDOUT)
            break;
    }
    v->thread_started = 0;
}

/* Exits one completion may still bring (an MMIO access KVM splits, a
 * string port instruction) before KVM_RUN answers EINTR. */
#define VCPU_COMPLETE_MAX_EXITS 64

int vcpu_complete_io(struct vcpu *v)
{
    struct vm *vm = v->vm;
    struct exit_ctx ctx = {&vm->pio, &vm->mmio, v->run_size};
    int ret = -EIO;
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < VCPU_COMPLETE_MAX_EXITS; i++) {
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            /* EINTR is the answer: the exit is finished, nothing entered. */
            ret = errno == EINTR ? 0 : -errno;
            break;
        }
        /* Another exit of the same instruction: serve it as the vCPU's
         * thread would have. */
        struct exit_result res = exit_handle(&ctx, v->run);
        if (res.action != EXIT_CONTINUE) {
            ret = -EIO;
            break;
        }
    }
    __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELEASE);
    return ret;
}

void vcpu_destroy(struct vcpu *v)
{
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->fd >= 0)
        close(v->fd);
    v->run = NULL;
    v->fd = -1;
}
