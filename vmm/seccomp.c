#include "vmm/sandbox.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

/* Syscalls every thread of runvm makes once the guest runs: memory,
 * locks, signals, time, its own end, and I/O on descriptors it holds (a
 * vCPU thread writes a console's output and a tap's frames itself when
 * the guest's register write starts a device). */
static const int common[] = {
    SCMP_SYS(read),         SCMP_SYS(write),          SCMP_SYS(readv),
    SCMP_SYS(writev),       SCMP_SYS(pread64),        SCMP_SYS(close),
    SCMP_SYS(sendmsg),      SCMP_SYS(sendto),         SCMP_SYS(futex),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(exit),
    SCMP_SYS(exit_group),   SCMP_SYS(mmap),           SCMP_SYS(munmap),
    SCMP_SYS(mremap),       SCMP_SYS(madvise),        SCMP_SYS(brk),
    SCMP_SYS(mprotect),     SCMP_SYS(clock_gettime),  SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),    SCMP_SYS(gettid),         SCMP_SYS(getpid),
    SCMP_SYS(tgkill),       SCMP_SYS(sched_yield),    SCMP_SYS(restart_syscall),
    SCMP_SYS(lseek),        SCMP_SYS(fstat),          SCMP_SYS(newfstatat),
    SCMP_SYS(getrandom),    SCMP_SYS(epoll_ctl),      SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),         SCMP_SYS(sigaltstack), /* thread and sanitizer
                                                      run-time teardown */
};

/* The event loop's besides: the loop itself, the API server's sockets,
 * files and timers, --boot-timer's residency count, runvm's terminal at
 * the end, and the filters its vCPU threads add (seccomp; a filter can
 * only narrow what is allowed). No open: runvm opens nothing once
 * sandboxed. */
static const int loop_only[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(accept4),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rmdir),
    SCMP_SYS(umask),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(fcntl),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(mincore),
    SCMP_SYS(getrusage),
    SCMP_SYS(seccomp),
    SCMP_SYS(sched_getaffinity), /* sanitizers' thread start */
    SCMP_SYS(ftruncate),         /* a snapshot's memory file, sparse */
    SCMP_SYS(fsync),             /* and both its files on disk, */
    SCMP_SYS(rename),            /* moved into place */
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
};

/* ioctls a vCPU thread makes: run, dump its registers when the guest
 * fails, raise a device's interrupt, set a tap's offloads when the guest's
 * virtio-net driver takes them (the register write is handled here). */
#if defined(__x86_64__)
#define VCPU_IOCTLS                                                            \
    KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE, TUNSETOFFLOAD
#elif defined(__aarch64__)
#define VCPU_IOCTLS KVM_RUN, KVM_GET_ONE_REG, KVM_IRQ_LINE, TUNSETOFFLOAD
#endif

static const unsigned long vcpu_ioctls[] = {VCPU_IOCTLS};

/* What taking a snapshot reads of a paused VM (vmm/snapshot.c, on the
 * loop thread): read-only state of the VM and its vCPUs. */
#if defined(__x86_64__)
#define SNAPSHOT_IOCTLS                                                        \
    KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK, KVM_GET_MSR_INDEX_LIST,      \
        KVM_GET_MSRS, KVM_GET_CPUID2, KVM_GET_XCRS, KVM_GET_XSAVE,             \
        KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS,                 \
        KVM_GET_MP_STATE, KVM_GET_TSC_KHZ
#elif defined(__aarch64__)
/* None until aarch64 snapshots exist (the vCPUs read ONE_REG anyway). */
#define SNAPSHOT_IOCTLS KVM_GET_ONE_REG
#endif

/* What making a VM restored from a snapshot takes (SANDBOX_LOOP_VMS):
 * the VM, its vCPUs, RAM and interrupt plumbing, the state written into
 * them, and --boot-timer's exit counters. */
#if defined(__x86_64__)
#define VM_MAKING_IOCTLS                                                       \
    KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,          \
        KVM_CREATE_VM, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR,            \
        KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, KVM_GET_SUPPORTED_CPUID,          \
        KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU, KVM_IRQFD, KVM_IOEVENTFD, \
        KVM_SET_IRQCHIP, KVM_SET_PIT2, KVM_SET_CLOCK, KVM_SET_TSC_KHZ,         \
        KVM_SET_CPUID2, KVM_SET_SREGS, KVM_SET_XCRS, KVM_SET_XSAVE,            \
        KVM_SET_REGS, KVM_SET_LAPIC, KVM_SET_MSRS, KVM_SET_VCPU_EVENTS,        \
        KVM_SET_DEBUGREGS, KVM_SET_MP_STATE, KVM_GET_STATS_FD
#elif defined(__aarch64__)
#define VM_MAKING_IOCTLS                                                       \
    KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,          \
        KVM_CREATE_VM, KVM_CREATE_DEVICE, KVM_SET_DEVICE_ATTR,                 \
        KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU, KVM_ARM_PREFERRED_TARGET, \
        KVM_ARM_VCPU_INIT, KVM_SET_ONE_REG, KVM_IRQFD, KVM_IOEVENTFD,          \
        KVM_GET_STATS_FD
#endif
static const unsigned long vm_making_ioctls[] = {VM_MAKING_IOCTLS};
static const int vm_making[] = {
    SCMP_SYS(eventfd2),   /* irqfd, ioeventfds */
    SCMP_SYS(socketpair), /* the agent channel, */
    SCMP_SYS(setsockopt), /* and its buffer sizes */
};

/* The loop's: the vCPUs' too, since their threads start under the loop's
 * filter and only narrow it; the terminal it restores at the end; a
 * snapshot's reads. */
static const unsigned long loop_ioctls[] = {
    VCPU_IOCTLS, TCGETS, TCSETS, TCSETSW, TCSETSF, SNAPSHOT_IOCTLS,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *kind_name(enum sandbox_kind kind)
{
    return kind == SANDBOX_VCPU ? "vCPU" : "event loop";
}

/* Appends v in base 10 or 16 at p; returns the end. */
static char *put_num(char *p, unsigned long long v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

/* A syscall outside a thread's list: say which, with its first two
 * arguments, and end runvm (125). Async-signal-safe: hand-formatted, one
 * write. A terminal --console made raw stays raw (`reset` fixes it). */
static void on_sigsys(int sig, siginfo_t *info, void *ucv)
{
    (void)sig;
    unsigned long long a0 = 0, a1 = 0;
#if defined(__x86_64__)
    const ucontext_t *uc = ucv;
    a0 = (unsigned long long)uc->uc_mcontext.gregs[REG_RDI];
    a1 = (unsigned long long)uc->uc_mcontext.gregs[REG_RSI];
#elif defined(__aarch64__)
    const ucontext_t *uc = ucv;
    a0 = (unsigned long long)uc->uc_mcontext.regs[0];
    a1 = (unsigned long long)uc->uc_mcontext.regs[1];
#else
    (void)ucv;
#endif
    char msg[200], *p = msg;
    unsigned nr = (unsigned)info->si_syscall;
    p = put_str(p, "runvm: sandbox: syscall ");
    p = put_num(p, nr, 10);
    p = put_str(p, " (0x");
    p = put_num(p, a0, 16);
    p = put_str(p, ", 0x");
    p = put_num(p, a1, 16);
    p = put_str(p, ", ...) is not allowed here (seccomp; `ausyscall ");
    p = put_num(p, nr, 10);
    p = put_str(p, "` names it): stopping\n");
    ssize_t w = write(STDERR_FILENO, msg, (size_t)(p - msg));
    (void)w;
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
    bool loop = kind != SANDBOX_VCPU;
    if (loop) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0) {
            int e = errno;
            snprintf(err, err_len, "sandbox: SIGSYS handler: %s", strerror(e));
            return -e;
        }
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        snprintf(err, err_len, "sandbox: seccomp_init failed");
        return -ENOMEM;
    }
    /* no_new_privs is set already (sandbox_process): libseccomp need not
     * call prctl, which no list allows. */
    int ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (!ret)
        ret = add_all(ctx, common, N(common));
    if (!ret && loop)
        ret = add_all(ctx, loop_only, N(loop_only));
    if (!ret && kind == SANDBOX_LOOP_VMS)
        ret = add_all(ctx, vm_making, N(vm_making));
    /* Threads only (the vCPUs); clone3 says ENOSYS so glibc uses clone,
     * whose flags a filter can see. */
    if (!ret && loop)
        ret = seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    if (!ret && loop)
        ret =
            seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (!ret && loop) {
        /* Sockets: Unix ones only (the API's output sockets). */
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                               SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    }
    if (!ret && loop) /* who a connection is from (api/httpd.c's cap) */
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getsockopt), 2,
                               SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
                               SCMP_A2(SCMP_CMP_EQ, SO_PEERCRED));
    if (!ret)
        ret = loop ? add_ioctls(ctx, loop_ioctls, N(loop_ioctls))
                   : add_ioctls(ctx, vcpu_ioctls, N(vcpu_ioctls));
    if (!ret && kind == SANDBOX_LOOP_VMS)
        ret = add_ioctls(ctx, vm_making_ioctls, N(vm_making_ioctls));
    if (!ret)
        ret = seccomp_load(ctx);
    seccomp_release(ctx);
    if (ret < 0)
        snprintf(err, err_len, "sandbox: %s thread's seccomp filter: %s",
                 kind_name(kind), strerror(-ret));
    return ret;
}
