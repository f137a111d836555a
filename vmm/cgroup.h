/* A cgroup v2 of the VM's own (--cgroup PARENT, #17): runvm's memory
 * (guest RAM included: it is runvm's), its threads and its CPU time are
 * capped by the kernel, whatever a guest that took over a device model
 * does, and a VMM that is stopped leaves nothing behind in it.
 *
 * runvm forks once: the child is the VMM, in PARENT/runvm.PID; the parent
 * stays outside as its supervisor, forwards the signals sent to it, and
 * when the child ends kills whatever is left in the cgroup, removes it and
 * ends as the child did. The supervisor is what removes the cgroup: a
 * process cannot remove the cgroup it is in. */
#ifndef RUNVM_CGROUP_H
#define RUNVM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the VM's cgroup allows. */
struct cgroup_limits {
    uint64_t mem_bytes; /* guest RAM */
    unsigned int cpus;  /* vCPUs */
};

/* runvm's own memory beside guest RAM (its buffers, KVM's page tables
 * and vCPU structures, which the kernel charges to it too), and its
 * threads beside the vCPUs. */
#define CGROUP_MEM_SLACK  (128ull << 20)
#define CGROUP_PIDS_SLACK 32u

/* The supervisor's status where runvm could not run in the cgroup or its
 * memory limit stopped it: runvm's RUNVM_EXIT_INFRA. */
#define CGROUP_EXIT_INFRA 125

/* The values written to memory.max, pids.max and cpu.max for lim: guest
 * RAM + 1/32 of it + CGROUP_MEM_SLACK; vCPUs + CGROUP_PIDS_SLACK; the CPU
 * time of vCPUs + 1 CPUs (the event loop's) per 100 ms period. */
void cgroup_values(const struct cgroup_limits *lim, char mem[32], char pids[32],
                   char cpu[48]);

/* Makes PARENT/runvm.PID (PID: the caller's), enabling the memory, pids
 * and cpu controllers for PARENT's children where they are not yet, and
 * writes lim's values into it; the path goes to path. Empty runvm.N
 * cgroups whose process N is gone (a supervisor that was SIGKILLed) are
 * removed on the way. 0, or -errno with why in err (nothing is left). */
int cgroup_make(const char *parent, const struct cgroup_limits *lim, char *path,
                size_t path_len, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Moves the calling process into the cgroup at path. 0 or -errno. */
int cgroup_join(const char *path, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Kills what is left in the cgroup at path and removes it. 0, or -errno
 * with why in err. */
int cgroup_remove(const char *path, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* PARENT/runvm.PID, the cgroup of the VMM whose supervisor is PID (what
 * cgroup_make names it). 0 or -ENAMETOOLONG. */
int cgroup_path(const char *parent, pid_t supervisor, char *path,
                size_t path_len) __attribute__((warn_unused_result));

/* cgroup_remove without waiting, for an event loop: kills what is left
 * and removes the cgroup if it is empty by then. 0 (removed or not there),
 * or -EBUSY (its last process is still dying: the next cgroup_make under
 * PARENT removes it) or another -errno. */
int cgroup_release(const char *path);

/* The cgroup's memory.current, bytes; 0 if unreadable. */
uint64_t cgroup_memory(const char *path);

/* Whether the kernel killed a process of the cgroup at path for memory
 * (memory.events' oom_kill). */
bool cgroup_oom_killed(const char *path);

/* cgroup_make, then fork. Returns in the child, which is the VMM, with
 * the supervisor's pid in *supervisor: 0 once it is in the new cgroup and
 * dies with its supervisor (PR_SET_PDEATHSIG; a change of uid clears it:
 * cgroup_rearm after --user), or -errno with why in err (then the caller
 * ends as on any error, with 125: the supervisor removes the cgroup and
 * passes that on). The parent never returns: it waits for the child,
 * removes the cgroup and exits with the child's status (its signal raised
 * again; 125 where the cgroup's memory limit killed it, said on stderr).
 * -errno with why in err and no child where the cgroup could not be made
 * or the fork failed (nothing is left). */
int cgroup_enter(const char *parent, const struct cgroup_limits *lim,
                 pid_t *supervisor, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* In the VMM after a change of uid: it dies with its supervisor again. 0,
 * or -ESRCH where the supervisor is already gone (or -errno). */
int cgroup_rearm(pid_t supervisor) __attribute__((warn_unused_result));

#endif
