#include "vmm/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const controllers[] = {"memory", "pids", "cpu"};

void cgroup_values(const struct cgroup_limits *lim, char mem[32], char pids[32],
                   char cpu[48])
{
    snprintf(
        mem, 32, "%" PRIu64,
        (uint64_t)(lim->mem_bytes + lim->mem_bytes / 32 + CGROUP_MEM_SLACK));
    snprintf(pids, 32, "%u", lim->cpus + CGROUP_PIDS_SLACK);
    snprintf(cpu, 48, "%llu 100000",
             ((unsigned long long)lim->cpus + 1) * 100000ull);
}

/* dir/name, or -ENAMETOOLONG. */
static int join(char *out, size_t out_len, const char *dir, const char *name)
{
    int n = snprintf(out, out_len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/* Opens dir/name. The fd, or -errno. */
static int open_in(const char *dir, const char *name, int flags)
{
    char p[PATH_MAX];
    int ret = join(p, sizeof(p), dir, name);
    if (ret < 0)
        return ret;
    int fd = open(p, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Writes value into dir/name. 0 or -errno. */
static int put(const char *dir, const char *name, const char *value)
{
    int fd = open_in(dir, name, O_WRONLY);
    if (fd < 0)
        return fd;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int ret = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
    close(fd);
    return ret;
}

/* dir/name's first line into buf (NUL-terminated, newline dropped). 0 or
 * -errno. */
static int get(const char *dir, const char *name, char *buf, size_t len)
{
    int fd = open_in(dir, name, O_RDONLY);
    if (fd < 0)
        return fd;
    ssize_t n = read(fd, buf, len - 1);
    int ret = n < 0 ? -errno : 0;
    close(fd);
    if (ret < 0)
        return ret;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* Whether word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += wl)
        if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0'))
            return true;
    return false;
}

/* The value of key in a flat-keyed file such as memory.events, or 0. */
static uint64_t keyed(const char *dir, const char *name, const char *key)
{
    int fd = open_in(dir, name, O_RDONLY);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
    if (!f) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char line[128];
    uint64_t v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            v = strtoull(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Removes parent's empty runvm.N cgroups whose process N is gone. */
static void sweep(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "runvm.", 6) != 0)
            continue;
        long pid = strtol(e->d_name + 6, &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX)
            continue;
        /* Our own number: a dead runvm's whose pid we were given. */
        if (pid == getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
            (void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

__attribute__((format(printf, 4, 5))) static int
fail(char *err, size_t err_len, int ret, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, err_len, "--cgroup: %s: %s", what, strerror(-ret));
    return ret;
}

int cgroup_make(const char *parent, const struct cgroup_limits *lim, char *path,
                size_t path_len, char *err, size_t err_len)
{
    struct statfs fs;
    if (statfs(parent, &fs) < 0)
        return fail(err, err_len, -errno, "%s", parent);
    if (fs.f_type != CGROUP2_SUPER_MAGIC) {
        snprintf(err, err_len,
                 "--cgroup: %s is not a cgroup v2 directory (one under "
                 "the cgroup2 mount, such as /sys/fs/cgroup)",
                 parent);
        return -ENOTDIR;
    }
    char have[256], on[256];
    int ret = get(parent, "cgroup.controllers", have, sizeof(have));
    if (ret == 0)
        ret = get(parent, "cgroup.subtree_control", on, sizeof(on));
    if (ret < 0)
        return fail(err, err_len, ret, "%s: its cgroup files", parent);
    for (size_t i = 0; i < sizeof(controllers) / sizeof(*controllers); i++) {
        const char *c = controllers[i];
        if (!has_word(have, c)) {
            snprintf(err, err_len,
                     "--cgroup: %s: the %s controller is not available "
                     "there (its cgroup.controllers: \"%s\"); enable it in "
                     "the cgroup above",
                     parent, c, have);
            return -EOPNOTSUPP;
        }
        if (has_word(on, c))
            continue;
        char plus[16];
        snprintf(plus, sizeof(plus), "+%s", c);
        ret = put(parent, "cgroup.subtree_control", plus);
        if (ret < 0)
            return fail(err, err_len, ret,
                        "%s: enabling the %s controller for its children%s",
                        parent, c,
                        ret == -EBUSY ? " (it holds processes itself: give "
                                        "runvm a cgroup of its own)"
                        : ret == -EACCES || ret == -EPERM
                            ? " (not delegated to this user)"
                            : "");
    }
    sweep(parent);
    ret = cgroup_path(parent, getpid(), path, path_len);
    if (ret < 0)
        return fail(err, err_len, ret, "%s", parent);
    if (mkdir(path, 0755) < 0)
        return fail(err, err_len, -errno, "making %s%s", path,
                    errno == EACCES || errno == EPERM
                        ? " (PARENT is not delegated to this user)"
                        : "");
    char mem[32], pids[32], cpu[48];
    cgroup_values(lim, mem, pids, cpu);
    const char *what = "memory.max";
    ret = put(path, what, mem);
    if (ret == 0) {
        /* Guest RAM stays in RAM (absent without swap accounting). */
        int r = put(path, "memory.swap.max", "0");
        ret = r == -ENOENT ? 0 : r;
        what = "memory.swap.max";
    }
    if (ret == 0)
        ret = put(path, what = "pids.max", pids);
    if (ret == 0)
        ret = put(path, what = "cpu.max", cpu);
    if (ret < 0) {
        fail(err, err_len, ret, "%s: writing %s", path, what);
        rmdir(path);
        return ret;
    }
    return 0;
}

int cgroup_join(const char *path, char *err, size_t err_len)
{
    int ret = put(path, "cgroup.procs", "0");
    if (ret < 0)
        return fail(err, err_len, ret, "moving runvm into %s", path);
    return 0;
}

static void nap_ms(long ms)
{
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

int cgroup_remove(const char *path, char *err, size_t err_len)
{
    /* cgroup.kill (Linux 5.14) stops what is left; without it, whatever
     * a VMM left would keep the cgroup. */
    (void)put(path, "cgroup.kill", "1");
    int ret = 0;
    for (int i = 0; i < 200; i++) { /* 2 s for the kill to land */
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        ret = -errno;
        if (ret != -EBUSY)
            break;
        nap_ms(10);
    }
    return fail(err, err_len, ret, "removing %s", path);
}

int cgroup_path(const char *parent, pid_t supervisor, char *path,
                size_t path_len)
{
    char name[32];
    snprintf(name, sizeof(name), "runvm.%d", (int)supervisor);
    return join(path, path_len, parent, name);
}

int cgroup_release(const char *path)
{
    (void)put(path, "cgroup.kill", "1");
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -errno;
}

uint64_t cgroup_memory(const char *path)
{
    char v[32];
    return get(path, "memory.current", v, sizeof(v)) == 0
               ? strtoull(v, NULL, 10)
               : 0;
}

bool cgroup_oom_killed(const char *path)
{
    return keyed(path, "memory.events", "oom_kill") > 0;
}

int cgroup_rearm(pid_t supervisor)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return -errno;
    /* Checked after: a supervisor gone before the prctl sent nothing. */
    return getppid() == supervisor ? 0 : -ESRCH;
}

/* The supervisor: waits for child, forwarding the signals sent to it (not
 * those of its terminal: the child has them already), then removes the
 * cgroup and ends as the child did. */
static _Noreturn void supervise(pid_t child, const char *path,
                                const sigset_t *set)
{
    int status = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig == SIGCHLD) {
            pid_t p = waitpid(child, &status, WNOHANG);
            if (p == child)
                break;
            if (p < 0 && errno == ECHILD) { /* reaped by someone else */
                status = CGROUP_EXIT_INFRA << 8;
                break;
            }
            continue;
        }
        if (si.si_code != SI_KERNEL)
            kill(child, sig);
    }
    char err[512];
    bool oom = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
               cgroup_oom_killed(path);
    if (cgroup_remove(path, err, sizeof(err)) < 0)
        fprintf(stderr, "runvm: %s\n", err);
    if (oom) {
        fprintf(stderr,
                "runvm: stopped: the VM's cgroup reached its memory limit "
                "(memory.max)\n");
        _exit(CGROUP_EXIT_INFRA);
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* The VMM's end, not the supervisor's core. */
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WEXITSTATUS(status));
}

int cgroup_enter(const char *parent, const struct cgroup_limits *lim,
                 pid_t *supervisor, char *err, size_t err_len)
{
    char path[PATH_MAX];
    int ret = cgroup_make(parent, lim, path, sizeof(path), err, err_len);
    if (ret < 0)
        return ret;
    /* Blocked before the fork: a signal sent to the supervisor before it
     * waits is forwarded, not its death. SIGCHLD as the kernel's default,
     * whatever runvm inherited (ignored, the child would be reaped
     * unseen). */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_BLOCK, &set, &old);
    *supervisor = getpid();
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        ret = -errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        char why[256];
        if (cgroup_remove(path, why, sizeof(why)) < 0)
            fprintf(stderr, "runvm: %s\n", why);
        return fail(err, err_len, ret, "fork");
    }
    if (child > 0)
        supervise(child, path, &set);
    sigprocmask(SIG_SETMASK, &old, NULL);
    ret = cgroup_rearm(*supervisor);
    if (ret < 0)
        return fail(err, err_len, ret, "the supervisor is gone");
    return cgroup_join(path, err, err_len);
}
