#include "vmm/sandbox.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

/* Syscalls every thread of runvm makes once the guest runs: memory,
 * locks, signals, time, its own end, and I/O on descriptors it holds. */
static const int common[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(close),
    SCMP_SYS(futex),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(mprotect),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettid),
    SCMP_SYS(getpid),
    SCMP_SYS(tgkill),
    SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(getrandom),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sigaltstack), /* thread and sanitizer run-time teardown */
};

/* The event loop's: the loop itself, the API server's sockets and timers,
 * runvm's own terminal and statistics at the end, and starting the vCPU
 * threads. */
static const int loop_only[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(accept4),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(sendto),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rmdir),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(eventfd2),
    SCMP_SYS(fcntl),
    SCMP_SYS(clone),
    SCMP_SYS(clone3),
    SCMP_SYS(umask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(openat),
    SCMP_SYS(getdents64),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(prctl),
    SCMP_SYS(wait4),
    SCMP_SYS(mincore), /* --boot-timer: guest RAM resident at the end */
    /* A vCPU thread it starts adds its own filter (a filter can only
     * narrow what is allowed). */
    SCMP_SYS(seccomp),
};

/* ioctls a vCPU thread makes: run, dump its registers when the guest
 * fails, raise a device's interrupt, read KVM's statistics at a boot-timer
 * mark, set a tap's offloads when the guest's virtio-net driver takes them
 * (the register write is handled here). */
#define VCPU_IOCTLS                                                            \
    KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS,   \
        KVM_GET_STATS_FD, TUNSETOFFLOAD

static const unsigned long vcpu_ioctls[] = {VCPU_IOCTLS};

/* The loop's: the vCPUs' too, since their threads start under the loop's
 * filter and only narrow it; KVM's statistics at the end, and the terminal
 * it restores. */
static const unsigned long loop_ioctls[] = {
    VCPU_IOCTLS, KVM_CHECK_EXTENSION, TCGETS, TCSETS, TCSETSW, TCSETSF,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *kind_name(enum sandbox_kind kind)
{
    return kind == SANDBOX_VCPU ? "vCPU" : "event loop";
}

/* A syscall outside a thread's list: say which and end runvm (125). Only
 * async-signal-safe calls, all on the lists. */
static void on_sigsys(int sig, siginfo_t *info, void *ucv)
{
    (void)sig;
    unsigned long long a0 = 0, a1 = 0;
#ifdef __x86_64__
    const ucontext_t *uc = ucv;
    a0 = (unsigned long long)uc->uc_mcontext.gregs[REG_RDI];
    a1 = (unsigned long long)uc->uc_mcontext.gregs[REG_RSI];
#else
    (void)ucv;
#endif
    char msg[200];
    int n = snprintf(msg, sizeof(msg),
                     "runvm: sandbox: syscall %d (0x%llx, 0x%llx, ...) is not "
                     "allowed here (seccomp; `ausyscall %d` names it): "
                     "stopping\n",
                     info->si_syscall, a0, a1, info->si_syscall);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
        (void)w;
    }
    _exit(125);
}

static int add_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                   SCMP_A1(SCMP_CMP_EQ, reqs[i]));
        if (ret < 0)
            return ret;
    }
    return 0;
}

int sandbox_seccomp(enum sandbox_kind kind, char *err, size_t err_len)
{
    const char *off = getenv("RUNVM_SECCOMP");
    if (off && strcmp(off, "off") == 0)
        return 0;
    if (kind == SANDBOX_LOOP) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0) {
            snprintf(err, err_len, "sandbox: SIGSYS handler: %s",
                     strerror(errno));
            return -errno;
        }
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        snprintf(err, err_len, "sandbox: seccomp_init failed");
        return -ENOMEM;
    }
    int ret = add_all(ctx, common, N(common));
    if (!ret && kind == SANDBOX_LOOP)
        ret = add_all(ctx, loop_only, N(loop_only));
    if (!ret && kind == SANDBOX_LOOP) {
        /* Sockets: Unix ones only (the API's output sockets). */
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                               SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    }
    if (!ret)
        ret = kind == SANDBOX_LOOP
                  ? add_ioctls(ctx, loop_ioctls, N(loop_ioctls))
                  : add_ioctls(ctx, vcpu_ioctls, N(vcpu_ioctls));
    if (!ret)
        ret = seccomp_load(ctx);
    seccomp_release(ctx);
    if (ret < 0)
        snprintf(err, err_len, "sandbox: %s thread's seccomp filter: %s",
                 kind_name(kind), strerror(-ret));
    return ret;
}
