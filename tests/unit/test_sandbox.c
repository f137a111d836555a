/* vmm/sandbox.c: what runvm does to itself before the guest runs, checked
 * in a child (it cannot be undone) and in a thread the child starts after,
 * as the vCPU threads are. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/sandbox.h"

/* 0 when the calling thread is confined as sandbox_process promises. */
static int confined(void)
{
    struct rlimit r;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return 1;
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return 2;
    if (getrlimit(RLIMIT_CORE, &r) < 0 || r.rlim_cur != 0 || r.rlim_max != 0)
        return 3;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0 || r.rlim_max > SANDBOX_MAX_FDS ||
        r.rlim_cur > r.rlim_max)
        return 4;
    return 0;
}

static void *thread_main(void *arg)
{
    *(int *)arg = confined();
    return NULL;
}

static void process_confined_and_threads_inherit(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[128];
        if (sandbox_process(err, sizeof(err)) != 0)
            _exit(10);
        int r = confined();
        if (r)
            _exit(r);
        int tr = -1;
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, &tr) != 0 ||
            pthread_join(t, NULL) != 0)
            _exit(11);
        _exit(tr ? 20 + tr : 0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A soft limit below the cap is kept, not raised. */
static void lower_fd_limit_kept(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit r = {.rlim_cur = 64, .rlim_max = 4096};
        char err[128];
        if (setrlimit(RLIMIT_NOFILE, &r) < 0 ||
            sandbox_process(err, sizeof(err)) != 0 ||
            getrlimit(RLIMIT_NOFILE, &r) < 0)
            _exit(1);
        _exit(r.rlim_cur == 64 && r.rlim_max == SANDBOX_MAX_FDS ? 0 : 2);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The Seccomp: line of /proc/self/status (2: a filter), read through fd,
 * opened before any filter (a sandboxed runvm opens nothing). */
static int seccomp_mode_fd(int fd)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    int mode = -1;
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nSeccomp:");
    if (p)
        sscanf(p + 1, "Seccomp: %d", &mode);
    return mode;
}

static int seccomp_mode(void)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    int mode = seccomp_mode_fd(fd);
    close(fd);
    return mode;
}

/* Runs fn in a child with stderr in a pipe: its exit status, and what it
 * printed in out. */
static int in_child(void (*fn)(void), char *out, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void confine(enum sandbox_kind kind)
{
    char err[160];
    int status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (sandbox_process(err, sizeof(err)) < 0 ||
        sandbox_seccomp(SANDBOX_LOOP, err, sizeof(err)) < 0)
        _exit(10);
    if (seccomp_mode_fd(status) != 2)
        _exit(11);
    close(status);
    /* A vCPU thread adds its own list over the loop's. */
    if (kind == SANDBOX_VCPU &&
        sandbox_seccomp(SANDBOX_VCPU, err, sizeof(err)) < 0)
        _exit(12);
}

/* What the event loop does goes on; a network socket, exec or ptrace
 * stops runvm with 125 and names the syscall. */
static void loop_allowed(void)
{
    confine(SANDBOX_LOOP);
    int ep = epoll_create1(0); /* before: a set-up call, not allowed */
    (void)ep;
}

static void loop_works(void)
{
    confine(SANDBOX_LOOP);
    int sv = socket(AF_UNIX, SOCK_STREAM, 0);
    void *m = malloc(1 << 20);
    /* Who a connection is from: api/httpd.c's per-client cap. */
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (sv < 0 || !m ||
        getsockopt(sv, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        _exit(12);
    free(m);
    close(sv);
}

static void loop_no_inet(void)
{
    confine(SANDBOX_LOOP);
    socket(AF_INET, SOCK_STREAM, 0);
    _exit(13);
}

static void loop_no_other_sockopt(void)
{
    confine(SANDBOX_LOOP);
    int sv = socket(AF_UNIX, SOCK_STREAM, 0);
    int v;
    socklen_t len = sizeof(v);
    getsockopt(sv, SOL_SOCKET, SO_SNDBUF, &v, &len);
    _exit(13);
}

static void loop_no_exec(void)
{
    confine(SANDBOX_LOOP);
    execl("/bin/true", "true", (char *)NULL);
    _exit(14);
}

static void *nothing(void *arg)
{
    return arg;
}

/* The loop starts threads (the vCPUs): clone3 says ENOSYS, clone with
 * CLONE_THREAD passes. */
static void loop_starts_threads(void)
{
    confine(SANDBOX_LOOP);
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0 ||
        pthread_join(t, NULL) != 0)
        _exit(12);
}

static void loop_no_open(void)
{
    confine(SANDBOX_LOOP);
    open("/etc/hostname", O_RDONLY);
    _exit(13);
}

static void loop_no_fork(void)
{
    confine(SANDBOX_LOOP);
    fork();
    _exit(13);
}

static void loop_stays_undumpable(void)
{
    confine(SANDBOX_LOOP);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    _exit(13);
}

/* A vCPU thread installs its list over the loop's and goes on with what
 * it does: memory, locks, writes, signals to itself. */
static void vcpu_works(void)
{
    confine(SANDBOX_VCPU);
    void *m = malloc(1 << 20);
    if (!m || write(2, "", 0) < 0)
        _exit(12);
    free(m);
    /* KVM_RUN passes both lists (here on no descriptor: EBADF). */
    if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
        _exit(14);
    sigset_t set;
    sigemptyset(&set);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        _exit(13);
}

/* A vCPU thread has less: no epoll_wait, no sockets. */
static void vcpu_no_epoll_wait(void)
{
    confine(SANDBOX_VCPU);
    struct epoll_event e;
    epoll_wait(0, &e, 1, 0);
    _exit(15);
}

static void vcpu_no_open(void)
{
    confine(SANDBOX_VCPU);
    open("/etc/passwd", O_RDONLY);
    _exit(16);
}

static void seccomp_allow_lists(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(in_child(loop_works, out, sizeof(out)), 0);
    assert_int_equal(in_child(vcpu_works, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(in_child(loop_starts_threads, out, sizeof(out)), 0);
    static void (*const stopped[])(void) = {
        loop_allowed,          loop_no_inet,       loop_no_other_sockopt,
        loop_no_exec,          loop_no_open,       loop_no_fork,
        loop_stays_undumpable, vcpu_no_epoll_wait, vcpu_no_open};
    for (size_t i = 0; i < sizeof(stopped) / sizeof(stopped[0]); i++) {
        assert_int_equal(in_child(stopped[i], out, sizeof(out)), 125);
        assert_non_null(strstr(out, "runvm: sandbox: syscall "));
        assert_non_null(strstr(out, "is not allowed here"));
    }
}

/* With RUNVM_SECCOMP=off no filter is installed: exec works. */
static void exec_unfiltered(void)
{
    char err[160];
    if (sandbox_process(err, sizeof(err)) < 0 ||
        sandbox_seccomp(SANDBOX_LOOP, err, sizeof(err)) < 0 ||
        seccomp_mode() != 0)
        _exit(10);
    execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
    _exit(14);
}

static void seccomp_off_by_env(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(setenv("RUNVM_SECCOMP", "off", 1), 0);
    assert_int_equal(in_child(exec_unfiltered, out, sizeof(out)), 7);
    assert_int_equal(unsetenv("RUNVM_SECCOMP"), 0);
}

/* --user: root gives up its ids and groups for good. */
static void drop_to_nobody(void)
{
    char err[160];
    if (sandbox_drop(65534, 65534, err, sizeof(err)) < 0)
        _exit(10);
    uid_t r, e, su;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &su) < 0 || r != 65534 || e != 65534 || su != 65534)
        _exit(11);
    if (getresgid(&gr, &ge, &gs) < 0 || gr != 65534 || ge != 65534 ||
        gs != 65534)
        _exit(12);
    if (getgroups(0, NULL) != 0)
        _exit(13);
    if (setuid(0) == 0 || seteuid(0) == 0)
        _exit(14);
    _exit(0);
}

static void drop_privileges(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* only root has ids to give up */
    char out[256];
    assert_int_equal(in_child(drop_to_nobody, out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(drop_privileges),
        cmocka_unit_test(seccomp_allow_lists),
        cmocka_unit_test(seccomp_off_by_env),
        cmocka_unit_test(process_confined_and_threads_inherit),
        cmocka_unit_test(lower_fd_limit_kept),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
