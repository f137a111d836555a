/* The agent's side of runvm's command line: for the one-shot `--lang LANG
 * FILE`, API mode and `--exec -- ARGV`, find what the command line left to
 * runvm (kernel, image, memory), read the caller's files, and plug the
 * agent exchange into the booted VM. main.c boots the VM; docs/cli.md is
 * the user's reference. */
#ifndef RUNVM_CLI_H
#define RUNVM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli/options.h"
#include "vmm/agent_channel.h"
#include "vmm/vm.h"

struct cli_job;

/* Lists every language with an image on stdout; runvm's exit status (125
 * when there is none). */
int cli_list_langs(void);

/* `runvm serve`: the daemon (api/serve.h) over the languages cfg names,
 * found in the image directories. Its exit status. */
int cli_serve(const struct cli_config *cfg);

/* The job for cfg's mode, NULL for a bare boot. For --lang it finds the
 * kernel and image, sizes the memory and sets the kernel command line and
 * the VM's watchdog in cfg, and reads FILE and --stdin. Prints what is
 * missing and exits 125 when it cannot (no VM exists yet). */
struct cli_job *cli_job_new(struct cli_config *cfg);

/* Serves the agent on vm's agent channel ch (before vm_run). 0 or -errno,
 * message in err. */
int cli_job_attach(struct cli_job *job, struct vm *vm, struct agent_channel *ch,
                   char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The job's snapshot, before cli_job_attach: resumed, its VM was
 * restored from one (the agent is re-announced with fresh entropy and
 * time); take, pause at the agent's HELLO for one to be taken, then go on
 * (cli_job_go_on). In API mode either makes each submission a VM of its
 * own, restored from the snapshot (cli_job_wants_vm). */
void cli_job_snapshot(struct cli_job *job, bool resumed, bool take);

/* After the pause and the snapshot: sends the one-shot's run, or serves
 * on in API mode. 0 or -errno with a message in err. */
int cli_job_go_on(struct cli_job *job, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Whether vm_run's VM_STOP_PAUSE is the job's pause at the agent's HELLO
 * (for a snapshot). */
bool cli_job_paused(const struct cli_job *job);

/* The snapshot could not be taken: API mode serves every submission in
 * its one VM. */
void cli_job_no_fresh_vms(struct cli_job *job);

/* API mode: whether vm_run's VM_STOP_PAUSE asks for a fresh VM for the
 * next submission. The caller then detaches the job, destroys the
 * machine, makes one restored from the snapshot and reattaches the job
 * to it (or says why it could not). */
bool cli_job_wants_vm(const struct cli_job *job);
void cli_job_detach(struct cli_job *job);
int cli_job_reattach(struct cli_job *job, struct vm *vm,
                     struct agent_channel *ch, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void cli_job_no_vm(struct cli_job *job, const char *why);

/* runvm's exit status once vm_run returned (agent_exec_status,
 * api_server_status); signo: the signal runvm got, 0 for none. */
int cli_job_status(struct cli_job *job, enum vm_stop stop, int signo);

/* --user and --group as ids: a name or a number each; the user's own group
 * when only --user is given. 0, or -1 with why in err. */
int cli_resolve_ids(const char *user, const char *group, uid_t *uid, gid_t *gid,
                    char *err, size_t err_len);

/* Hands what the job serves on (API mode's sockets) to uid:gid. */
int cli_job_chown(struct cli_job *job, uid_t uid, gid_t gid, char *err,
                  size_t err_len);

/* Before the machine is destroyed. NULL is fine. */
void cli_job_free(struct cli_job *job);

#endif
