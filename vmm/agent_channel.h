/* The agent channel of a VM: a virtio-console (the guest's /dev/hvc0,
 * where runvm-agent listens) whose back-end is one end of a socketpair
 * runvm owns; the other end, host_fd, is for agent_client. */
#ifndef RUNVM_AGENT_CHANNEL_H
#define RUNVM_AGENT_CHANNEL_H

#include <stddef.h>

#include "devices/virtio_console.h"
#include "vmm/vm.h"
#include "vmm/vm_virtio.h"

struct agent_channel {
    struct virtio_console con;
    struct vm_virtio slot;
    int host_fd;  /* runvm's end: agent_client speaks here */
    int guest_fd; /* the console's back-end */
    int attached;
};

/* Creates the socketpair and the console and attaches it to vm (before
 * vm_load, since it adds to the kernel command line). 0 or -errno with a
 * message in err; agent_channel_free cleans up either way. */
int agent_channel_attach(struct agent_channel *ch, struct vm *vm, char *err,
                         size_t err_len) __attribute__((warn_unused_result));

/* After vm_run, before vm_destroy: leaves the VM's event loop and closes
 * both ends. */
void agent_channel_free(struct agent_channel *ch);

#endif
