#include "vmm/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/resource.h>
#include <unistd.h>

static int fail(char *err, size_t err_len, const char *what)
{
    int ret = -errno;
    snprintf(err, err_len, "sandbox: %s: %s", what, strerror(errno));
    return ret;
}

int sandbox_drop(uid_t uid, gid_t gid, char *err, size_t err_len)
{
    if (geteuid() == 0 && setgroups(0, NULL) < 0)
        return fail(err, err_len, "setgroups");
    if (setresgid(gid, gid, gid) < 0)
        return fail(err, err_len, "setresgid (--group)");
    if (setresuid(uid, uid, uid) < 0)
        return fail(err, err_len, "setresuid (--user)");
    if (uid != 0 && setuid(0) == 0) {
        errno = EPERM;
        return fail(err, err_len, "root could be regained");
    }
    return 0;
}

int sandbox_process(char *err, size_t err_len)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail(err, err_len, "no_new_privs");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return fail(err, err_len, "not dumpable");
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &core) < 0)
        return fail(err, err_len, "RLIMIT_CORE");
    struct rlimit fds;
    if (getrlimit(RLIMIT_NOFILE, &fds) < 0)
        return fail(err, err_len, "RLIMIT_NOFILE");
    if (fds.rlim_max == RLIM_INFINITY || fds.rlim_max > SANDBOX_MAX_FDS)
        fds.rlim_max = SANDBOX_MAX_FDS;
    if (fds.rlim_cur == RLIM_INFINITY || fds.rlim_cur > fds.rlim_max)
        fds.rlim_cur = fds.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &fds) < 0)
        return fail(err, err_len, "RLIMIT_NOFILE");
    return 0;
}
