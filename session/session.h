/* The host side of one agent session, once for every front end: the
 * one-shot CLI and --exec (cli/agent_exec.c) and API mode (api/) only
 * decide where its events go.
 *
 *   BOOTING --HELLO, right language--> READY --session_run--> RUNNING
 *      |                                 ^                        |
 *      |                                 +-- final EXIT, ERROR ---+
 *      +--HELLO, wrong language or version--> FAILED <--run past its
 *                                                         deadline--
 *   any state --channel closed--> CLOSED
 *
 * Each run that session_run started ends exactly once: with a final EXIT
 * (sink.exit, then sink.done with the exit status of session/event.h) or
 * with a failure (sink.done with 125 and a reason: an agent ERROR, the
 * channel closing). A run session_run refused never began and is not
 * reported. Knows nothing of KVM. */
#ifndef RUNVM_SESSION_H
#define RUNVM_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/evloop.h"
#include "session/agent_client.h"

enum session_state {
    SESSION_BOOTING,
    SESSION_READY,
    SESSION_RUNNING,
    SESSION_FAILED, /* the agent serves another language or stopped
                       keeping its run's limits */
    SESSION_CLOSED,
};

/* Where a session's events go; all on the loop thread, any may be NULL.
 * Byte fields are valid only during the call. */
struct session_sink {
    /* The agent announced itself (and serves the expected language). */
    void (*ready)(void *opaque, const struct agent_hello *h);
    /* A step's output, and every EXIT of the current run. */
    void (*output)(void *opaque, const struct msg_output *o);
    void (*exit)(void *opaque, const struct msg_exit *e);
    /* The run ended: runvm's exit status, and why when it failed (NULL
     * after a final EXIT). Also called with 125 when the agent turns out
     * to serve another language. */
    void (*done)(void *opaque, int status, const char *why);
    /* The channel closed while no run was active (after done, if one
     * was); err is -errno. */
    void (*closed)(void *opaque, int err);
    /* session_power_off's grace passed, or its SHUTDOWN could not be
     * sent: stop the VM. Once at most. */
    void (*power_off_overdue)(void *opaque);
};

/* What the agent's HELLO must announce; a NULL member is not checked. */
struct session_expect {
    const char *lang; /* its language */
    const char
        *version; /* a version its toolchain must match (version_match) */
};

struct session {
    struct agent_client client;
    bool client_up;
    enum session_state state;
    struct session_expect expect;
    const struct session_sink *sink;
    void *opaque;
    uint32_t run_id;
    uint64_t runs;    /* runs started */
    int power_off_fd; /* timerfd of session_power_off's grace, or -1 */
    int watchdog_fd;  /* timerfd of the running run's deadline, or -1 */
    /* Output bytes the running run may still pass on (its steps'
     * max_output), and those dropped past it, over the session. */
    uint64_t output_budget, output_dropped;
    unsigned int watchdog_slack_ms; /* 0: no host-side deadline */
    bool resuming;                  /* session_resume: READY only on ... */
    uint32_t announce_id;           /* ... the HELLO answering this ANNOUNCE */
};

/* Serves the agent on fd (a connected stream; not owned) from loop.
 * expect may be NULL; its strings must outlive the session. 0 or
 * -errno. */
int session_init(struct session *s, struct evloop *loop, int fd,
                 const struct session_expect *expect,
                 const struct session_sink *sink, void *opaque)
    __attribute__((warn_unused_result));

/* For an agent in a VM restored from a snapshot, whose first HELLO went
 * to the process that took it: sends ANNOUNCE with fresh random bytes
 * (getrandom) and the wall-clock time, which the agent puts into its
 * kernel before it answers. Only that answer makes the session READY
 * (with the usual checks); an agent ERROR before it fails the session
 * (sink.done with 125): the VM could not be made its own. After
 * session_init, before the loop runs. 0 or -errno. */
int session_resume(struct session *s) __attribute__((warn_unused_result));

/* Sends the agent fresh entropy and the time as session_resume does,
 * without waiting for its answer: for the VM a snapshot was just taken
 * of, which goes on running (the agent takes them before any later RUN).
 * 0 or -errno. */
int session_refresh(struct session *s) __attribute__((warn_unused_result));

/* Gives every later run a host-side deadline: its steps' time limits (the
 * agent's default where a RUN gives none) plus slack_ms. A run still going
 * then fails (sink.done with 125) and the session is FAILED: the guest no
 * longer keeps its own limits, so its agent is not trusted again. 0 turns
 * it off. */
void session_set_watchdog(struct session *s, unsigned int slack_ms);

/* Starts a run. 0, -EAGAIN before the agent is ready, -EBUSY while a run
 * is active, -EPIPE once closed or failed (also when sending this one
 * found the channel gone), -EMSGSIZE (over 8 MiB),
 * -E2BIG (too many files), -ENOMEM. Nothing is reported for a refused
 * run. */
int session_run(struct session *s, const struct agent_request *req)
    __attribute__((warn_unused_result));

/* Asks the agent to sync and power the guest off, and gives it grace_ms
 * to do so: then, or at once if the request cannot be sent, the sink's
 * power_off_overdue is called. A second call changes nothing. */
void session_power_off(struct session *s, unsigned int grace_ms);

/* The agent's identity from its last HELLO (empty strings before). */
const struct agent_hello *session_hello(const struct session *s);

/* Stops serving; does not close the fd. Safe on a zeroed session. */
void session_free(struct session *s);

#endif
