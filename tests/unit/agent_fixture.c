/* The guest agent core forked on a socketpair, for host-side tests. */
#include "tests/unit/agent_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-agent/agent.h"

/* The uid and gid steps run as when the test runs as root: the one
 * test_agent's fork_bomb_contained counts. */
#define STEP_UID 1000
#define STEP_GID 1000

#define STOP_WAIT_MS 5000
#define STOP_POLL_MS 10

int agent_fixture_init(struct agent_fixture *f, const char *name,
                       const char *conf_text)
{
    memset(f, 0, sizeof(*f));
    int n = snprintf(f->work, sizeof(f->work), "/tmp/%s.XXXXXX", name);
    if (n < 0 || (size_t)n >= sizeof(f->work))
        return -ENAMETOOLONG;
    if (!mkdtemp(f->work)) {
        int err = -errno;
        f->work[0] = '\0';
        return err;
    }
    snprintf(f->conf, sizeof(f->conf), "%s.conf", f->work);
    if (chmod(f->work, 0711) < 0)
        return -errno;
    snprintf(f->tmp, sizeof(f->tmp), "%s.tmp", f->work);
    if (mkdir(f->tmp, 0700) < 0) {
        int err = -errno;
        f->tmp[0] = '\0';
        return err;
    }
    if (chmod(f->tmp, 01777) < 0)
        return -errno;
    if (!conf_text)
        return 0; /* an image without a lang.conf */
    FILE *conf = fopen(f->conf, "w");
    if (!conf)
        return -errno;
    int wrote = fputs(conf_text, conf);
    if (fclose(conf) != 0 || wrote < 0)
        return -EIO;
    return 0;
}

/* The mount point of the cgroup2 hierarchy, from /proc/self/mounts. */
static int cgroup2_mount(char *out, size_t len)
{
    FILE *m = fopen("/proc/self/mounts", "r");
    if (!m)
        return -errno;
    char line[512], dir[256], type[64];
    int err = -ENOENT;
    while (fgets(line, sizeof(line), m))
        if (sscanf(line, "%*s %255s %63s", dir, type) == 2 &&
            !strcmp(type, "cgroup2")) {
            err =
                (size_t)snprintf(out, len, "%s", dir) < len ? 0 : -ENAMETOOLONG;
            break;
        }
    fclose(m);
    return err;
}

int agent_fixture_use_cgroup(struct agent_fixture *f, const char *name)
{
    char mount[256], line[512], own[512] = "";
    int err = cgroup2_mount(mount, sizeof(mount));
    if (err < 0)
        return err;
    /* Our cgroup in that hierarchy: the "0::PATH" line. */
    FILE *c = fopen("/proc/self/cgroup", "r");
    if (!c)
        return -errno;
    while (fgets(line, sizeof(line), c))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(own, sizeof(own), "%s", line + 3);
        }
    fclose(c);
    if (!own[0])
        return -ENOENT;
    int n = snprintf(f->cgroup, sizeof(f->cgroup), "%s%s/%s.XXXXXX", mount,
                     strcmp(own, "/") ? own : "", name);
    if (n < 0 || (size_t)n >= sizeof(f->cgroup)) {
        f->cgroup[0] = '\0';
        return -ENAMETOOLONG;
    }
    if (!mkdtemp(f->cgroup)) {
        err = -errno;
        f->cgroup[0] = '\0';
        return err;
    }
    return 0;
}

/* Removes the cgroup root: the step cgroups the agent left, then itself,
 * retrying while the last processes of a step leave. */
static int remove_cgroup(const char *root)
{
    int err = 0;
    for (int tries = 0; tries < STOP_WAIT_MS / STOP_POLL_MS; tries++) {
        DIR *d = opendir(root);
        if (!d)
            return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_type == DT_DIR && de->d_name[0] != '.') {
                char sub[512];
                snprintf(sub, sizeof(sub), "%s/%s", root, de->d_name);
                rmdir(sub);
            }
        closedir(d);
        if (rmdir(root) == 0)
            return 0;
        err = -errno;
        if (err != -EBUSY)
            return err;
        usleep(STOP_POLL_MS * 1000);
    }
    return err;
}

/* The child: nothing of the test's but its stdio and the channel. */
static _Noreturn void run_agent(const struct agent_fixture *f, int channel_fd)
{
    unsigned channel = (unsigned)channel_fd;
    if (channel > 3)
        close_range(3, channel - 1, 0);
    close_range(channel < 3 ? 3 : channel + 1, ~0u, 0);
    struct agent_config cfg = {
        .channel_fd = channel_fd,
        .lang_conf = f->conf,
        .work_root = f->work,
        .tmp_root = f->tmp,
        .cgroup_root = f->cgroup[0] ? f->cgroup : NULL,
        .switch_user = geteuid() == 0,
        .uid = STEP_UID,
        .gid = STEP_GID,
        .refresh = f->refresh,
    };
    struct agent *a = agent_new(&cfg);
    if (!a)
        _exit(100);
    int r = agent_run(a);
    agent_free(a);
    _exit(r < 0 ? 101 : r);
}

int agent_fixture_start(struct agent_fixture *f, int channel_fd)
{
    /* Or the child's copy of buffered test output is written twice. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        run_agent(f, channel_fd);
    int err = pid < 0 ? -errno : 0;
    close(channel_fd);
    if (pid > 0)
        f->pid = pid;
    return err;
}

int agent_fixture_stop(struct agent_fixture *f, int *wstatus)
{
    int status = 0;
    int err = 0;
    if (f->pid <= 0)
        return -ECHILD;
    for (int waited = 0;; waited += STOP_POLL_MS) {
        pid_t r = waitpid(f->pid, &status, WNOHANG);
        if (r == f->pid)
            break;
        if (r < 0 && errno != EINTR) {
            err = -errno;
            break;
        }
        if (waited >= STOP_WAIT_MS) {
            kill(f->pid, SIGKILL);
            while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
                ;
            err = -ETIMEDOUT;
            break;
        }
        usleep(STOP_POLL_MS * 1000);
    }
    f->pid = 0;
    if (wstatus)
        *wstatus = status;
    return err;
}

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int agent_fixture_free(struct agent_fixture *f)
{
    int err = 0;
    if (f->pid > 0)
        agent_fixture_stop(f, NULL);
    if (f->conf[0] && unlink(f->conf) < 0 && errno != ENOENT)
        err = -errno;
    /* Depth first, not following links: whatever a step left in there. */
    const char *roots[] = {f->work, f->tmp};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
        if (roots[i][0] &&
            nftw(roots[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 &&
            errno != ENOENT && !err)
            err = -errno;
    if (f->cgroup[0]) {
        int r = remove_cgroup(f->cgroup);
        if (r < 0 && !err)
            err = r;
    }
    f->work[0] = '\0';
    f->conf[0] = '\0';
    f->tmp[0] = '\0';
    f->cgroup[0] = '\0';
    return err;
}
