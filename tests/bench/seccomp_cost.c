/* What runvm's seccomp filters add to one system call (#17), natively, in
 * the same process: the event loop's filter on write(2), and the vCPU
 * filter on ioctl(2) with KVM_RUN's request (its arguments are checked),
 * each timed unfiltered, then in a child confined as runvm confines
 * itself (sandbox_process, sandbox_seccomp). KVM_RUN goes to /dev/null,
 * which refuses it: the filter's path is the real one, the kernel's work
 * after it is small.
 *
 * Prints "seccomp_cost WHAT off NS on NS" for write and ioctl, ns a call,
 * the median of 9 rounds of COUNT calls.
 * usage: seccomp_cost [COUNT]   (default 200000) */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sandbox.h"

#define ROUNDS 9

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median ns a call of kind (0: write, 1: ioctl KVM_RUN) on fd. */
static double per_call(int kind, int fd, unsigned long count)
{
    double r[ROUNDS];
    char c = 0;
    for (int k = 0; k < ROUNDS; k++) {
        double t = now_ns();
        for (unsigned long i = 0; i < count; i++) {
            if (kind == 0)
                (void)!write(fd, &c, 1);
            else
                (void)!ioctl(fd, KVM_RUN, 0);
        }
        r[k] = (now_ns() - t) / (double)count;
    }
    qsort(r, ROUNDS, sizeof(*r), cmp);
    return r[ROUNDS / 2];
}

/* per_call in a child confined with kind's filter, through a pipe. */
static double confined(enum sandbox_kind kind, int call, int fd,
                       unsigned long count)
{
    int p[2];
    double v = -1;
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        close(p[0]);
        if (sandbox_process(err, sizeof(err)) < 0 ||
            sandbox_seccomp(kind, err, sizeof(err)) < 0) {
            fprintf(stderr, "seccomp_cost: %s\n", err);
            _exit(1);
        }
        v = per_call(call, fd, count);
        _exit(write(p[1], &v, sizeof(v)) == sizeof(v) ? 0 : 1);
    }
    close(p[1]);
    if (pid < 0 || read(p[0], &v, sizeof(v)) != sizeof(v))
        v = -1;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return v;
}

int main(int argc, char **argv)
{
    unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    if (count == 0 || count > 100000000) {
        fprintf(stderr, "usage: seccomp_cost [COUNT]\n");
        return 2;
    }
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror("seccomp_cost: /dev/null");
        return 1;
    }
    /* The filters are off with RUNVM_SECCOMP=off: make sure they are on. */
    unsetenv("RUNVM_SECCOMP");
    double w_off = per_call(0, fd, count);
    double w_on = confined(SANDBOX_LOOP, 0, fd, count);
    double i_off = per_call(1, fd, count);
    double i_on = confined(SANDBOX_VCPU, 1, fd, count);
    if (w_on < 0 || i_on < 0)
        return 1;
    printf("seccomp_cost write off %.1f on %.1f\n", w_off, w_on);
    printf("seccomp_cost ioctl off %.1f on %.1f\n", i_off, i_on);
    return 0;
}
