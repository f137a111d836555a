/* Finding the agent channel in the guest: the virtio-serial port runvm
 * names MSG_CHANNEL_PORT_NAME, or /dev/hvc0 from a runvm whose agent
 * channel is a plain console (no MULTIPORT). */
#ifndef RUNVM_PORT_H
#define RUNVM_PORT_H

#include <stdbool.h>
#include <stddef.h>

/* Looks in SYSFS/class/virtio-ports/ for the port whose name file holds
 * name and writes "/dev/vportNpM" to out. 0, -ENOENT (none yet), or
 * -ENAMETOOLONG. */
int port_find(const char *sysfs, const char *name, char *out, size_t len);

/* True when a virtio console under SYSFS/bus/virtio/devices/ negotiated
 * MULTIPORT: its named ports are coming, even if not there yet. */
bool port_multiport_present(const char *sysfs);

/* Waits up to timeout_ms for the port named name and writes its /dev path
 * to out. 0; -ENOENT at once when no console device has MULTIPORT (use
 * /dev/hvc0); -ETIMEDOUT when one has but the port never appeared. */
int port_wait(const char *sysfs, const char *name, int timeout_ms, char *out,
              size_t len);

#endif
