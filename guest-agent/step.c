#include "guest-agent/step.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH                                                           \
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- in the child: only async-signal-safe calls until exec --------------- */

static void child_say(const char *what, const char *arg, int err)
{
    char buf[512];
    size_t n = 0;
    const char *parts[] = {"runvm-agent: ", what, " ", arg, ": ",
                           strerror(err),   "\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t l = strlen(parts[i]);
        if (l > sizeof(buf) - n)
            l = sizeof(buf) - n;
        memcpy(buf + n, parts[i], l);
        n += l;
    }
    ssize_t unused = write(STDERR_FILENO, buf, n);
    (void)unused;
}

static __attribute__((noreturn)) void child_fail(const char *what,
                                                 const char *arg)
{
    child_say(what, arg, errno);
    _exit(127);
}

static int write_file(const char *dir, const char *name, const char *value)
{
    char path[512];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
        sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, value, strlen(value));
    int err = n < 0 ? -errno : 0;
    close(fd);
    return err;
}

static void set_limit(int resource, uint64_t soft, uint64_t hard,
                      const char *name)
{
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
    if (setrlimit(resource, &rl) < 0)
        child_fail("setrlimit", name);
}

/* Empties the ambient and bounding capability sets (needs CAP_SETPCAP,
 * so before the user changes). The kernel's last capability is the first
 * one PR_CAPBSET_DROP calls EINVAL; no table here goes stale. */
static void drop_capabilities(void)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 &&
        errno != EINVAL)
        child_fail("prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
    for (unsigned long cap = 0;; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0UL, 0UL, 0UL) == 0)
            continue;
        if (errno == EINVAL && cap > 0)
            break;
        child_fail("prctl", "PR_CAPBSET_DROP");
    }
}

/* execvpe with the PATH of envp, not of the agent's own environment. */
static void exec_in_path(const char *const *argv, const char *const *envp)
{
    char *const *av = (char *const *)(uintptr_t)argv;
    char *const *ev = (char *const *)(uintptr_t)envp;
    const char *file = argv[0];

    if (strchr(file, '/')) {
        execve(file, av, ev);
        return;
    }
    const char *path = DEFAULT_PATH;
    for (size_t i = 0; envp[i]; i++)
        if (!strncmp(envp[i], "PATH=", 5))
            path = envp[i] + 5;
    int saved = ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dl = end ? (size_t)(end - p) : strlen(p);
        char full[4096];
        if (dl + 1 + strlen(file) + 1 <= sizeof(full)) {
            memcpy(full, p, dl);
            size_t o = dl;
            if (dl)
                full[o++] = '/';
            strcpy(full + o, file);
            execve(full, av, ev);
            if (errno != ENOENT && errno != ENOTDIR)
                saved = errno;
        }
        if (!end)
            break;
        p = end;
    }
    errno = saved;
}

static __attribute__((noreturn)) void child_main(const struct step_spec *s)
{
    sigset_t none;

    /* Our own group, so a timeout kills the step and all it started. */
    setpgid(0, 0);
    if (s->cgroup && write_file(s->cgroup, "cgroup.procs", "0") < 0)
        child_fail("join cgroup", s->cgroup);

    /* exec keeps ignored signals ignored and the mask: reset both. */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (dup2(s->stdin_fd, 0) < 0 || dup2(s->stdout_fd, 1) < 0 ||
        dup2(s->stderr_fd, 2) < 0)
        child_fail("dup2", "stdio");
    /* Nothing of the agent (channel, other pipes) leaks into the step. */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);

    set_limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
    if (s->limits.cpu_ms) {
        uint64_t sec = (s->limits.cpu_ms + 999) / 1000;
        /* SIGXCPU at the soft limit, SIGKILL a second later. */
        set_limit(RLIMIT_CPU, sec, sec + 1, "RLIMIT_CPU");
    }
    if (s->limits.mem_bytes && !(s->cgroup && s->cgroup_limits_memory))
        set_limit(RLIMIT_AS, s->limits.mem_bytes, s->limits.mem_bytes,
                  "RLIMIT_AS");
    /* RLIMIT_NPROC counts the processes of the real uid and is ignored for
     * root, so it only contains a fork bomb of a switched user. */
    if (s->limits.max_procs && s->switch_user)
        set_limit(RLIMIT_NPROC, s->limits.max_procs, s->limits.max_procs,
                  "RLIMIT_NPROC");

    if (s->timer_slack_ns &&
        prctl(PR_SET_TIMERSLACK, (unsigned long)s->timer_slack_ns) < 0)
        child_fail("prctl", "PR_SET_TIMERSLACK");

    if (chdir(s->workdir) < 0)
        child_fail("chdir", s->workdir);
    if (s->switch_user) {
        /* Still root: empty the bounding set, so that nothing the step
         * execs (a setuid-root or file-capability binary, were no_new_privs
         * ever lifted) can hold a capability again. */
        drop_capabilities();
        if (setgroups(0, NULL) < 0)
            child_fail("setgroups", "0");
        if (setgid(s->gid) < 0)
            child_fail("setgid", "step group");
        if (setuid(s->uid) < 0)
            child_fail("setuid", "step user");
    }
    /* From here on exec never grants privileges: setuid and setgid bits
     * and file capabilities of binaries in the image are ignored. Inherited
     * by everything the step starts; nothing can clear it. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0)
        child_fail("prctl", "PR_SET_NO_NEW_PRIVS");
    exec_in_path(s->argv, s->envp);
    child_fail("exec", s->argv[0]);
}

/* ---- in the agent -------------------------------------------------------- */

pid_t step_spawn(const struct step_spec *s)
{
    if (!s->argv || !s->argv[0])
        return -EINVAL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        child_main(s);
    /* Also here, so the group exists before the agent may signal it. */
    setpgid(pid, pid);
    return pid;
}

int step_cgroup_create(const char *root, const char *name,
                       const struct step_limits *limits, char *out,
                       size_t outlen, bool *limits_memory)
{
    char num[32];
    int r;

    *limits_memory = false;
    if ((size_t)snprintf(out, outlen, "%s/%s", root, name) >= outlen)
        return -ENAMETOOLONG;
    if (mkdir(out, 0755) < 0 && errno != EEXIST)
        return -errno;
    /* -ENOENT: the controller is not enabled here (the guest's PID 1
     * enables both or uses no cgroup; a host's --cgroup may lack one). */
    if (limits->mem_bytes) {
        snprintf(num, sizeof(num), "%" PRIu64, limits->mem_bytes);
        r = write_file(out, "memory.max", num);
        if (r < 0 && r != -ENOENT)
            goto fail;
        *limits_memory = r == 0;
        /* Absent without swap support: nothing to limit then. */
        if (*limits_memory)
            (void)write_file(out, "memory.swap.max", "0");
    }
    if (limits->max_procs) {
        snprintf(num, sizeof(num), "%" PRIu64, limits->max_procs);
        r = write_file(out, "pids.max", num);
        if (r < 0 && r != -ENOENT)
            goto fail;
    }
    return 0;
fail:
    rmdir(out);
    out[0] = '\0';
    return r;
}

void step_kill(pid_t pgid, const char *cgroup)
{
    if (cgroup)
        (void)write_file(cgroup, "cgroup.kill", "1");
    if (pgid > 0)
        kill(-pgid, SIGKILL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void step_reap_group(pid_t pgid, const char *cgroup, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

    /* Members whose parent died were reparented to us (PID 1 or child
     * subreaper), so waitpid on the group sees all of them. Kill again on
     * each round in case one forked before the first signal landed. */
    for (;;) {
        step_kill(pgid, cgroup);
        pid_t p = waitpid(-pgid, NULL, WNOHANG);
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0)
            return; /* ECHILD: the group is gone */
        if (p == 0) {
            if (now_ms() >= deadline)
                return;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

static int read_small(const char *dir, const char *name, char *buf, size_t len)
{
    char path[512];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
        sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (n < 0)
        return err;
    buf[n] = '\0';
    return 0;
}

/* Value of "key N" in a flat-keyed cgroup file. */
static int keyed(const char *text, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            *v = strtoull(p + kl + 1, NULL, 10);
            return 0;
        }
    return -ENOENT;
}

void step_cgroup_usage(const char *cgroup, struct step_usage *u)
{
    char buf[1024];
    uint64_t v;

    if (read_small(cgroup, "cpu.stat", buf, sizeof(buf)) == 0 &&
        keyed(buf, "usage_usec", &v) == 0) {
        u->have_cpu = true;
        u->cpu_ms = v / 1000;
    }
    if (read_small(cgroup, "memory.peak", buf, sizeof(buf)) == 0) {
        u->have_peak = true;
        u->peak_mem = strtoull(buf, NULL, 10);
    }
    if (read_small(cgroup, "memory.events", buf, sizeof(buf)) == 0 &&
        keyed(buf, "oom_kill", &v) == 0 && v > 0)
        u->oom_killed = true;
}

int step_cgroup_cpu_usec(const char *cgroup, uint64_t *usec)
{
    char buf[1024];
    int r = read_small(cgroup, "cpu.stat", buf, sizeof(buf));
    return r < 0 ? r : keyed(buf, "usage_usec", usec);
}

void step_cgroup_remove(const char *cgroup)
{
    for (int i = 0; i < 100; i++) {
        if (rmdir(cgroup) == 0 || errno != EBUSY)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}
