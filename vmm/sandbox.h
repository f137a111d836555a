/* What runvm does to itself once its VM is built and before the guest
 * runs (#17, the host sandbox): from then on a bug in a device model that
 * a guest exploits finds a process that cannot gain privileges through
 * exec (no_new_privs), cannot be read or traced by other processes of the
 * same user nor leave a core dump (not dumpable, RLIMIT_CORE 0), and has
 * a bounded number of descriptors. Threads created later (the vCPUs)
 * inherit all of it. */
#ifndef RUNVM_SANDBOX_H
#define RUNVM_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* Descriptors runvm may hold at once: its VM, vCPUs and devices, the API
 * server's connections and output sockets, with room to spare. */
#define SANDBOX_MAX_FDS 1024

/* 0, or -errno with what failed in err. */
int sandbox_process(char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Becomes uid and gid (no supplementary groups), for good: called once
 * everything privileged is open, before sandbox_process. 0, or -errno
 * with what failed in err (also when the change cannot be undone-proofed:
 * setuid(0) must fail afterwards for a uid other than 0). */
int sandbox_drop(uid_t uid, gid_t gid, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The kinds of thread runvm has once the guest runs, each with its own
 * seccomp allow-list (vmm/seccomp.c). */
enum sandbox_kind {
    SANDBOX_LOOP, /* the main thread: event loop, devices' I/O, the API */
    SANDBOX_VCPU, /* a vCPU thread: KVM_RUN and the exits it handles */
    /* SANDBOX_LOOP that also makes fresh VMs (API mode: one restored VM
     * per submission) on a /dev/kvm it holds: creating a VM, its vCPUs
     * and devices and writing a snapshot's state into them. */
    SANDBOX_LOOP_VMS,
};

/* Installs kind's allow-list on the calling thread (after
 * sandbox_process: no_new_privs is what lets an unprivileged process
 * filter itself). Threads it creates later inherit it and may add their
 * own. A call outside the list stops runvm with status 125, naming the
 * syscall on stderr. SANDBOX_LOOP also installs that SIGSYS handler. 0, or
 * -errno with what failed in err. Off (returns 0 at once) where
 * RUNVM_SECCOMP=off. */
int sandbox_seccomp(enum sandbox_kind kind, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
