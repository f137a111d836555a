/* One build or run step as a contained process: its own process group,
 * optionally its own cgroup v2, rlimits, an unprivileged user, a work
 * directory and pipes for its standard streams. The agent's event loop owns
 * the pipes and the timing; this module starts, kills and measures. */
#ifndef RUNVM_STEP_H
#define RUNVM_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct step_limits {
    uint64_t cpu_ms;    /* 0: none */
    uint64_t mem_bytes; /* 0: none */
    uint64_t max_procs; /* 0: none */
};

struct step_spec {
    const char *const *argv; /* argv[0] searched in envp's PATH */
    const char *const *envp;
    const char *workdir;
    int stdin_fd, stdout_fd, stderr_fd; /* the child's ends */
    bool switch_user;                   /* become uid/gid (needs root) */
    uid_t uid;
    gid_t gid;
    const char *cgroup;        /* directory of the step's cgroup, or NULL */
    bool cgroup_limits_memory; /* its memory.max holds limits.mem_bytes */
    struct step_limits limits;
    uint64_t timer_slack_ns; /* PR_SET_TIMERSLACK; 0 keeps the agent's */
};

/* Forks the step. The child becomes leader of a new process group, joins the
 * cgroup, applies rlimits (RLIMIT_AS only when no cgroup limits memory,
 * RLIMIT_NPROC only for a switched user) and the timer slack,
 * changes directory and user (emptying the capability bounding and ambient
 * sets first), sets no_new_privs and execs; if anything fails it writes why
 * to its stderr and exits 127. Returns the pid (also the pgid) or -errno. */
pid_t step_spawn(const struct step_spec *s) __attribute__((warn_unused_result));

/* Creates cgroup root/name with memory.max, memory.swap.max and pids.max from
 * limits; writes its path into out. A controller not enabled for root's
 * subtree has no files there: its limit is left to the rlimits, and
 * *limits_memory says whether memory.max holds one. 0 or -errno (then no
 * cgroup is used). */
int step_cgroup_create(const char *root, const char *name,
                       const struct step_limits *limits, char *out,
                       size_t outlen, bool *limits_memory)
    __attribute__((warn_unused_result));

/* SIGKILLs every process of the step: cgroup.kill when there is a cgroup,
 * and the process group. */
void step_kill(pid_t pgid, const char *cgroup);

/* After the leader was reaped: kills and reaps what is left of the process
 * group, so nothing of the step outlives its EXIT. Bounded by timeout_ms. */
void step_reap_group(pid_t pgid, const char *cgroup, int timeout_ms);

struct step_usage {
    bool have_cpu, have_peak;
    uint64_t cpu_ms;
    uint64_t peak_mem;
    bool oom_killed;
};

/* Reads cpu.stat, memory.peak and memory.events of a cgroup; fields it
 * cannot read stay unset. */
void step_cgroup_usage(const char *cgroup, struct step_usage *u);

/* The CPU time all processes of the cgroup have used, from cpu.stat's
 * usage_usec (there without the cpu controller too). 0 or -errno. */
int step_cgroup_cpu_usec(const char *cgroup, uint64_t *usec);

/* Removes the (empty) cgroup, retrying briefly while it drains. */
void step_cgroup_remove(const char *cgroup);

#endif
