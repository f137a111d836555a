/* vmm/cgroup.c: the VM's own cgroup v2 and the supervisor that removes
 * it. The refusals run anywhere; the rest needs a cgroup2 hierarchy whose
 * memory, pids and cpu controllers reach the test's cgroup (the nested
 * KVM host has one: tests/integration/43-plain-user.t runs this there)
 * and is skipped elsewhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/cgroup.h"

static void values(void **state)
{
    (void)state;
    char mem[32], pids[32], cpu[48];
    struct cgroup_limits lim = {.mem_bytes = 256ull << 20, .cpus = 2};
    cgroup_values(&lim, mem, pids, cpu);
    assert_string_equal(mem, "411041792"); /* 256 + 8 + 128 MiB */
    assert_string_equal(pids, "34");
    assert_string_equal(cpu, "300000 100000");
    lim = (struct cgroup_limits){.mem_bytes = 64ull << 30, .cpus = 32};
    cgroup_values(&lim, mem, pids, cpu);
    assert_string_equal(mem, "71001178112"); /* 64 GiB + 2 GiB + 128 MiB */
    assert_string_equal(cpu, "3300000 100000");
}

static void refuses_what_is_no_cgroup(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct cgroup_limits lim = {.mem_bytes = 1 << 20, .cpus = 1};
    assert_int_equal(
        cgroup_make("/tmp", &lim, path, sizeof(path), err, sizeof(err)),
        -ENOTDIR);
    assert_non_null(strstr(err, "/tmp is not a cgroup v2 directory"));
    assert_int_equal(cgroup_make("/nonexistent/cg", &lim, path, sizeof(path),
                                 err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/cg"));
    char longp[PATH_MAX + 16];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(
        cgroup_make(longp, &lim, path, sizeof(path), err, sizeof(err)),
        -ENAMETOOLONG);
}

/* A parent cgroup for the test beside its own, in P; false (skip) where
 * there is none with the three controllers. */
struct parent {
    char path[PATH_MAX];
};

/* Whether each of memory, pids and cpu is a word of the cgroup.controllers
 * file in dir. */
static bool has_controllers(const char *dir)
{
    char f[PATH_MAX + 32], have[256] = " ";
    snprintf(f, sizeof(f), "%s/cgroup.controllers", dir);
    FILE *h = fopen(f, "r");
    if (h) {
        if (!fgets(have + 1, sizeof(have) - 2, h))
            have[1] = '\0';
        fclose(h);
    }
    have[strcspn(have, "\n")] = '\0';
    strcat(have, " ");
    return strstr(have, " memory ") && strstr(have, " pids ") &&
           strstr(have, " cpu ");
}

/* The cgroup2 mount point into dir; false where there is none. */
static bool cgroup2_mount(char dir[256])
{
    FILE *m = fopen("/proc/self/mounts", "r");
    char line[512], type[64];
    bool found = false;
    while (m && !found && fgets(line, sizeof(line), m))
        found = sscanf(line, "%*s %255s %63s", dir, type) == 2 &&
                !strcmp(type, "cgroup2");
    if (m)
        fclose(m);
    return found;
}

static bool make_parent(struct parent *p)
{
    char line[512], dir[256], own[512] = "";
    bool found = cgroup2_mount(dir);
    FILE *c = fopen("/proc/self/cgroup", "r");
    while (c && fgets(line, sizeof(line), c))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(own, sizeof(own), "%s", line + 3);
        }
    if (c)
        fclose(c);
    if (!found || !own[0])
        return false;
    snprintf(p->path, sizeof(p->path), "%s%s/runvm-test.XXXXXX", dir,
             strcmp(own, "/") ? own : "");
    if (!mkdtemp(p->path))
        return false;
    if (!has_controllers(p->path)) {
        rmdir(p->path);
        return false;
    }
    return true;
}

static void read_file(const char *dir, const char *name, char *buf, size_t len)
{
    char f[PATH_MAX + 64];
    snprintf(f, sizeof(f), "%s/%s", dir, name);
    FILE *h = fopen(f, "r");
    assert_non_null(h);
    assert_non_null(fgets(buf, (int)len, h));
    buf[strcspn(buf, "\n")] = '\0';
    fclose(h);
}

static void no_controllers(void **state)
{
    (void)state;
    /* A hierarchy whose root lacks a controller (a host that keeps them
     * in cgroup v1): a clear refusal before anything is made. */
    char dir[256], path[PATH_MAX], err[512];
    if (!cgroup2_mount(dir) || has_controllers(dir))
        skip();
    struct cgroup_limits lim = {.mem_bytes = 1 << 20, .cpus = 1};
    assert_int_equal(
        cgroup_make(dir, &lim, path, sizeof(path), err, sizeof(err)),
        -EOPNOTSUPP);
    assert_non_null(strstr(err, "controller is not available"));
}

static void make_join_remove(void **state)
{
    (void)state;
    struct parent p;
    if (!make_parent(&p))
        skip();
    /* A stale runvm.N (its supervisor long gone) is swept. */
    char stale[PATH_MAX + 32];
    snprintf(stale, sizeof(stale), "%s/runvm.2147483646", p.path);
    assert_int_equal(mkdir(stale, 0755), 0);
    char path[PATH_MAX], err[512], buf[128];
    struct cgroup_limits lim = {.mem_bytes = 64ull << 20, .cpus = 1};
    assert_int_equal(
        cgroup_make(p.path, &lim, path, sizeof(path), err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(stale, &st), -1);
    read_file(path, "memory.max", buf, sizeof(buf));
    assert_string_equal(buf, "203423744"); /* 64 + 2 + 128 MiB */
    read_file(path, "pids.max", buf, sizeof(buf));
    assert_string_equal(buf, "33");
    read_file(path, "cpu.max", buf, sizeof(buf));
    assert_string_equal(buf, "200000 100000");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char e[512], own[512];
        if (cgroup_join(path, e, sizeof(e)) < 0)
            _exit(1);
        FILE *c = fopen("/proc/self/cgroup", "r");
        if (!c || !fgets(own, sizeof(own), c))
            _exit(2);
        own[strcspn(own, "\n")] = '\0';
        /* "0::/.../runvm-test.X/runvm.N": path ends with it. */
        size_t ol = strlen(own + 3), pl = strlen(path);
        _exit(ol <= pl && !strcmp(path + pl - ol, own + 3) ? 0 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(cgroup_remove(path, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(rmdir(p.path), 0);
}

/* cgroup_enter in a child of the test: that child becomes the supervisor
 * and what follows cgroup_enter (the "VMM") does what how asks. The
 * supervisor's wait status comes back; the parent cgroup must be empty
 * after. */
enum vmm_does { EXIT7, RAISE_USR1, WAIT_FOR_TERM, EAT_MEMORY };

static int run_supervised(const char *parent, enum vmm_does how)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[512];
        pid_t super;
        struct cgroup_limits lim = {.mem_bytes = 0, .cpus = 1};
        close(ready[0]);
        if (cgroup_enter(parent, &lim, &super, err, sizeof(err)) < 0)
            _exit(99);
        if (super != getppid() || write(ready[1], "r", 1) != 1)
            _exit(94);
        switch (how) {
        case EXIT7: _exit(7);
        case RAISE_USR1: raise(SIGUSR1); _exit(98);
        case WAIT_FOR_TERM:
            for (;;)
                pause();
        case EAT_MEMORY: {
            size_t len = 512ull << 20; /* past memory.max's 128 MiB */
            char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mem == MAP_FAILED)
                _exit(97);
            for (size_t i = 0; i < len; i += 4096)
                mem[i] = 1;
            _exit(96);
        }
        }
        _exit(95);
    }
    close(ready[1]);
    char c;
    /* The VMM is in its cgroup: the supervisor waits for signals. */
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    if (how == WAIT_FOR_TERM)
        kill(pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void supervisor_ends_as_the_vmm(void **state)
{
    (void)state;
    struct parent p;
    if (!make_parent(&p))
        skip();
    int st = run_supervised(p.path, EXIT7);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
    st = run_supervised(p.path, RAISE_USR1);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGUSR1);
    /* SIGTERM sent to the supervisor reaches the VMM. */
    st = run_supervised(p.path, WAIT_FOR_TERM);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    /* Past memory.max (swap off: memory.swap.max 0, or no swap): the
     * kernel kills the VMM, the supervisor says so with 125. */
    st = run_supervised(p.path, EAT_MEMORY);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), CGROUP_EXIT_INFRA);
    /* Each run's cgroup is gone: the parent can be removed. */
    assert_int_equal(rmdir(p.path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values),
        cmocka_unit_test(refuses_what_is_no_cgroup),
        cmocka_unit_test(no_controllers),
        cmocka_unit_test(make_join_remove),
        cmocka_unit_test(supervisor_ends_as_the_vmm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
