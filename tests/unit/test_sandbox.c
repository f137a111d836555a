/* vmm/sandbox.c: what runvm does to itself before the guest runs, checked
 * in a child (it cannot be undone) and in a thread the child starts after,
 * as the vCPU threads are. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
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

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(process_confined_and_threads_inherit),
        cmocka_unit_test(lower_fd_limit_kept),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
