/* One RUN in a fresh VM, then power off: `runvm --exec -- ARGV` and the
 * one-shot `runvm --lang LANG FILE`, as a front end of the session
 * (session/session.h): when the agent is ready it sends the RUN, and it
 * decides where the events go (runvm's stdout and stderr as they arrive,
 * or NDJSON events on stdout with json). After the run it sends SHUTDOWN
 * and turns the outcome into runvm's exit status (session/event.h). */
#ifndef RUNVM_AGENT_EXEC_H
#define RUNVM_AGENT_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#include "session/agent_client.h"
#include "session/session.h"
#include "vmm/agent_channel.h"
#include "vmm/vm.h"

struct agent_exec_config {
    /* The one RUN (build and run step, each with its limits); must
     * outlive the run. An unnamed file is the image's SOURCE. */
    const struct agent_request *req;
    bool json; /* NDJSON events on stdout instead of raw output */
    struct session_expect expect; /* what HELLO must announce */
    int shutdown_grace_ms;        /* after SHUTDOWN, before stopping the VM */
    /* Benchmark: send req this many times in the booted VM (0 or 1: once)
     * and print the round trips (RUN sent to final EXIT) on stderr. */
    int repeat;
    /* Snapshots: at the agent's HELLO pause the VM (vm_run returns
     * VM_STOP_PAUSE) instead of sending req; agent_exec_go_on sends it
     * later. The agent must be new enough to take a restored VM's
     * entropy and time (MSG_AGENT_REFRESH_VERSION). */
    bool pause_at_ready;
    /* The VM was restored from a snapshot: its agent is asked to announce
     * itself again, with fresh entropy and the time (session_resume). */
    bool resumed;
};

struct agent_exec;

/* Arms the exchange on vm's agent channel ch (before vm_run). 0, or
 * -errno with a message in err (*out is then freed and NULL). */
int agent_exec_attach(struct agent_exec **out, struct vm *vm,
                      struct agent_channel *ch,
                      const struct agent_exec_config *cfg, char *err,
                      size_t err_len) __attribute__((warn_unused_result));

/* Whether vm_run's VM_STOP_PAUSE is the pause at the agent's HELLO. */
bool agent_exec_paused(const struct agent_exec *x);

/* After such a pause (and a snapshot): sends the run, so that the next
 * vm_run serves it. 0 or -errno with a message in err. */
int agent_exec_go_on(struct agent_exec *x, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* After vm_run: runvm's exit status, from the run's outcome or, without
 * one, from why the VM stopped (event_stop_status; signo: the signal runvm
 * got, 0 for none). Prints what went wrong, if anything, on stderr. */
int agent_exec_status(struct agent_exec *x, enum vm_stop stop, int signo);

/* Before vm_destroy. NULL is fine. */
void agent_exec_free(struct agent_exec *x);

#endif
