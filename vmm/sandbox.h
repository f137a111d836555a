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

/* Descriptors runvm may hold at once: its VM, vCPUs and devices, the API
 * server's connections and output sockets, with room to spare. */
#define SANDBOX_MAX_FDS 1024

/* 0, or -errno with what failed in err. */
int sandbox_process(char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
