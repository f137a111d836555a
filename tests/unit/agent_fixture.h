/* The real guest agent core (guest-agent/agent.c) as a forked child on one
 * end of a socketpair, for the agent's own test (test_agent) and those of
 * the host side of the protocol (test_agent_client, test_session,
 * test_api): its work root and lang.conf
 * under /tmp, the child started, stopped gracefully, and cleaned up after.
 * Functions return 0 or -errno; they assert nothing, the test does. */
#ifndef RUNVM_AGENT_FIXTURE_H
#define RUNVM_AGENT_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

#include "protocol/msg.h"

/* A zeroed one holds nothing: stop and free do nothing with it. */
struct agent_fixture {
    char work[64];    /* the agent's work root; "" when none is made */
    char conf[96];    /* its lang.conf, <work>.conf */
    char tmp[96];     /* its tmp root (the steps' TMPDIR), <work>.tmp */
    char cgroup[200]; /* its cgroup root; "" when it has none */
    pid_t pid;        /* the agent while it runs, else 0 */
    /* agent_config.refresh for the child (set before start; NULL: none). */
    int (*refresh)(const struct msg_announce *a, char *err, size_t err_len);
};

/* Makes the work root /tmp/<name>.XXXXXX, mode 0711 so a step running as
 * uid 1000 reaches its per-run directory, the tmp root beside it (mode
 * 1777, as /tmp, which the agent empties for each fresh RUN), and writes
 * conf_text to the lang.conf beside them (NULL: none is written, as in an
 * image without). */
__attribute__((warn_unused_result)) int
agent_fixture_init(struct agent_fixture *f, const char *name,
                   const char *conf_text);

/* Gives the agent a cgroup v2 root for its steps' cgroups, as PID 1 has
 * (a new <name>.XXXXXX beside the caller's own cgroup), before
 * agent_fixture_start. Steps then get a cgroup, even where the memory or
 * pids controller is not enabled (only cgroup.kill and cpu.stat, which
 * every cgroup has, are sure). 0, or -errno where no cgroup2 hierarchy is
 * mounted or a new cgroup cannot be made in it (the caller skips). */
__attribute__((warn_unused_result)) int
agent_fixture_use_cgroup(struct agent_fixture *f, const char *name);

/* Forks the agent serving channel_fd (which it takes: the parent's copy is
 * closed here, on failure too). Steps run as uid/gid 1000 when the test
 * runs as root. The child keeps only fds 0-2 and channel_fd: a copy of the
 * host end, or of a client connection a server closes, would keep its
 * peer from ever seeing the end. */
__attribute__((warn_unused_result)) int
agent_fixture_start(struct agent_fixture *f, int channel_fd);

/* Waits up to 5 s for the agent to end, as it does once the caller has
 * shut the host end of its channel down (or sent SHUTDOWN), after killing
 * a step still running; SIGKILL only past that, since a killed agent
 * leaves its step's processes behind (test_agent counts uid 1000's
 * processes machine-wide). Stores the wait status in *wstatus when it is
 * not NULL. 0 when the agent ended by itself (or by a signal the test
 * sent), -ETIMEDOUT when it had to be killed, -ECHILD when none ran. */
int agent_fixture_stop(struct agent_fixture *f, int *wstatus);

/* Stops an agent still running (as agent_fixture_stop), then removes the
 * work and tmp roots with all the agent left in them, the lang.conf and
 * the cgroup root. */
__attribute__((warn_unused_result)) int
agent_fixture_free(struct agent_fixture *f);

#endif
