/* The guest agent's core: one event loop serving the channel (SLIP frames,
 * docs/protocol.md) and at most one RUN at a time. The same code runs as
 * PID 1 in the guest and as a plain process on a host (tests), selected by
 * struct agent_config; PID-1 duties themselves live in pid1.c. */
#ifndef RUNVM_AGENT_H
#define RUNVM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/msg.h"

#define AGENT_VERSION "0.3.0"

/* Limits used where a RUN leaves one at 0. */
#define AGENT_DEFAULT_WALL_MS                                                  \
    MSG_DEFAULT_WALL_MS /* the host counts on them                             \
                         */
#define AGENT_DEFAULT_MEM_BYTES  (512ull << 20)
#define AGENT_DEFAULT_MAX_PROCS  256
#define AGENT_DEFAULT_MAX_OUTPUT MSG_DEFAULT_MAX_OUTPUT
/* Pending stdin a RUN may queue up in the agent. */
#define AGENT_MAX_STDIN_PENDING (16u << 20)

struct agent_config {
    int channel_fd;          /* nonblocking-capable byte stream */
    const char *lang_conf;   /* path; missing file is fine */
    const char *work_root;   /* per-RUN directories are made here */
    const char *tmp_root;    /* emptied for each fresh RUN (/tmp), or NULL */
    const char *cgroup_root; /* cgroup v2 dir for step cgroups, or NULL */
    bool switch_user;        /* run steps as uid/gid (agent must be root) */
    uid_t uid;
    gid_t gid;
    bool kill_uid; /* on step end, kill every process of uid (PID 1 only) */
    /* An ANNOUNCE brought the host's entropy or time (a VM restored from a
     * snapshot): make this machine its own before answering. NULL: ignored
     * (a host-run agent must not touch the host's RNG or clock). 0 or
     * -errno; a failure is answered with an ERROR and no HELLO. */
    int (*refresh)(const struct msg_announce *a, char *err, size_t err_len);
};

/* Why agent_run returned. */
enum agent_end {
    AGENT_END_CHANNEL_CLOSED = 1, /* peer closed the channel */
    AGENT_END_SHUTDOWN = 2,       /* SHUTDOWN received */
};

struct agent;

/* Sets the agent up (reads lang.conf, sends HELLO). NULL on failure, with
 * the reason written to stderr. */
struct agent *agent_new(const struct agent_config *cfg);

/* Serves the channel until it closes or SHUTDOWN arrives. Returns
 * enum agent_end, or -errno on a fatal error (the caller reports it). */
int agent_run(struct agent *a);

/* Sends an ERROR (best effort, blocking up to a second); used before a fatal
 * exit. */
void agent_report_fatal(struct agent *a, const char *message);

void agent_free(struct agent *a);

#endif
