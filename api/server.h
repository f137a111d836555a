/* API mode (`runvm --lang LANG --api-sock PATH`): HTTP/1.1 on a Unix
 * socket, served from the VM's event loop. POST /start runs a program in
 * the booted VM and answers with the path of an output socket that
 * streams NDJSON events (session/event.h); GET /status; PUT /shutdown.
 * docs/cli.md is the reference. */
#ifndef RUNVM_API_SERVER_H
#define RUNVM_API_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "session/catalog.h"
#include "session/session.h"
#include "vmm/agent_channel.h"
#include "vmm/vm.h"

struct api_server_config {
    const char *sock_path; /* created mode 0600, removed at exit */
    int listen_fd;         /* without sock_path: a listening socket to serve */
    struct session_expect expect;  /* what HELLO must announce */
    const struct catalog *catalog; /* the versions there are, or NULL */
    uint64_t default_run_ms;
    uint64_t default_build_ms;
    /* 0: the defaults below. A run still going past its time limits plus
     * run_slack_ms fails and stops the VM (its guest no longer keeps
     * them); a connection that has not sent a whole request within
     * idle_ms, or not read its answer within it, is closed; events held
     * for a run's output socket past max_buffered bytes are dropped, and
     * a reader that does not take them is disconnected. */
    unsigned int run_slack_ms;
    unsigned int idle_ms;
    size_t max_buffered;
    /* The VM attached was restored from a snapshot (session_resume). */
    bool resumed;
    /* A submission is one fresh VM: a POST /start without reuse after a
     * run stops the VM it ran in (vm_run returns VM_STOP_PAUSE and
     * api_server_wants_renewal says so), and waits for the caller's
     * fresh one (api_server_renewed). */
    bool fresh_vms;
    /* At the first agent's HELLO, pause the VM (vm_run returns
     * VM_STOP_PAUSE, api_server_paused says so) for a snapshot to be
     * taken; api_server_go_on then serves on. */
    bool pause_at_ready;
};

#define API_RUN_SLACK_MS 30000
#define API_IDLE_MS      10000
#define API_MAX_BUFFERED (64u << 20)

struct api_server;

/* Serves the agent on vm's agent channel ch and listens on the socket
 * (before vm_run). 0 or -errno with a message in err. */
int api_server_attach(struct api_server **out, struct vm *vm,
                      struct agent_channel *ch,
                      const struct api_server_config *cfg, char *err,
                      size_t err_len) __attribute__((warn_unused_result));

/* Whether vm_run's VM_STOP_PAUSE is the pause at the first HELLO, and
 * going on from it (a POST /start that waited for HELLO starts). */
bool api_server_paused(const struct api_server *s);
void api_server_go_on(struct api_server *s);

/* Serves every later submission in the current VM (the snapshot fresh
 * VMs would come from could not be taken). */
void api_server_no_fresh_vms(struct api_server *s);

/* Whether vm_run's VM_STOP_PAUSE asks for a fresh VM: the caller then
 * calls api_server_detach, destroys the machine, makes a fresh one and
 * hands it over with api_server_renewed (or says why it could not with
 * api_server_renewal_failed), and runs it. */
bool api_server_wants_renewal(const struct api_server *s);

/* Stops serving the current VM's agent, before its machine is destroyed.
 * The API socket, its connections and the last run's output socket stay
 * (they are the loop's, not the VM's). */
void api_server_detach(struct api_server *s);

/* Serves vm's agent on ch (resumed: a restored VM) and starts the
 * waiting submission once it is ready. 0 or -errno with a message in
 * err (the submission is then answered 500 and the server stops). */
int api_server_renewed(struct api_server *s, struct vm *vm,
                       struct agent_channel *ch, bool resumed, char *err,
                       size_t err_len) __attribute__((warn_unused_result));

/* No fresh VM could be made: the waiting submission gets 500 with why,
 * and the server stops serving runs. */
void api_server_renewal_failed(struct api_server *s, const char *why);

/* After vm_run: 0 after PUT /shutdown, else as event_stop_status says
 * (124, 128+N for signal signo to runvm) or 125 when the VM or agent
 * failed. A run the VM stopped under ends with an exit event saying why
 * (api_run_vm_stopped). */
int api_server_status(struct api_server *s, enum vm_stop stop, int signo);

/* Hands the API socket and the output sockets' directory to uid:gid, for
 * a runvm that is about to become them (--user). 0 or -errno with the
 * path in err. */
int api_server_chown(struct api_server *s, uid_t uid, gid_t gid, char *err,
                     size_t err_len);

/* Closes every socket and removes the socket files. NULL is fine. */
void api_server_free(struct api_server *s);

#endif
