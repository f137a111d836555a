/* runvm's product front end: the one-shot `runvm --lang LANG FILE`, API
 * mode `runvm --lang LANG --api-sock PATH`, `--list-langs`, `--version`,
 * and the agent side of the low-level `--exec -- ARGV`. main.c boots the
 * VM; a cli_job plugs the agent exchange into it. docs/cli.md is the
 * user's reference. */
#ifndef RUNVM_CLI_H
#define RUNVM_CLI_H

#include <stddef.h>

#include "vmm/agent_channel.h"
#include "vmm/vm.h"

/* What main.c needs to boot for a --lang command line. */
struct cli_boot {
    const char *kernel;
    const char *initrd;
    const char *cmdline;
    unsigned long mem_mib;
    unsigned long cpus;
    unsigned long timeout_s; /* whole-VM watchdog, 0: none */
    int console;
};

struct cli_job;

/* true if argv is a product command line (--lang, --list-langs,
 * --version): then it is parsed, kernel and image found, and *boot and
 * *job filled. Prints and exits for --help, --list-langs, --version and
 * errors (status 2 for usage, 125 for a missing kernel or image). */
int cli_parse(int argc, char **argv, struct cli_boot *boot,
              struct cli_job **job);

/* A job running argv in the guest (--exec), its run bounded by timeout_s
 * (0: the agent's default). NULL on ENOMEM. */
struct cli_job *cli_exec_job(char **argv, unsigned long timeout_s);

/* Serves the agent on vm's agent channel ch (before vm_run). 0 or -errno,
 * message in err. */
int cli_job_attach(struct cli_job *job, struct vm *vm,
                   struct agent_channel *ch, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* runvm's exit status once vm_run returned (see agent_exec_status). */
int cli_job_status(struct cli_job *job, enum vm_stop stop, int vm_status);

/* Status for a failure before the guest ran: 125 with a job. */
int cli_failure_status(const struct cli_job *job, int bare_status);

/* Before vm_destroy. NULL is fine. */
void cli_job_free(struct cli_job *job);

#endif
