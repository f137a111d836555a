/* What the agent does because it is the guest's init: mount the basic file
 * systems, keep fds 0-2 valid, and end the VM (it never exits). */
#ifndef RUNVM_PID1_H
#define RUNVM_PID1_H

#include <stddef.h>

#include "protocol/msg.h"

#define PID1_WORK_ROOT "/work"
/* Emptied for each RUN without REUSE_WORKDIR (docs/protocol.md). */
#define PID1_TMP_ROOT "/tmp"
/* The size of each of the /tmp and /work tmpfs mounts (tmpfs's size=, a
 * share of the guest's RAM): without one each could take half of it, and
 * tmpfs pages outlive the step whose memory limit they were charged to.
 * Together they leave the other half to the program and the kernel. */
#define PID1_TMPFS_SIZE  "25%"
#define PID1_CGROUP_ROOT "/sys/fs/cgroup"
/* The channel where no virtio-serial port is named MSG_CHANNEL_PORT_NAME. */
#define PID1_CHANNEL "/dev/hvc0"
/* How long to wait for the named port to show up once a MULTIPORT console
 * exists (its ports are announced after the driver probes). */
#define PID1_PORT_WAIT_MS 10000

/* Mounts /proc, /sys, /dev (devtmpfs), /tmp and /work (tmpfs, each
 * PID1_TMPFS_SIZE) and cgroup2 with the memory and pids controllers
 * enabled for children. Failures are logged; returns 0 when cgroup2 is
 * usable, -errno when it is not. */
int pid1_setup(void);

/* agent_config.refresh for PID 1: mixes the host's entropy into the
 * kernel's input pool (RNDADDENTROPY, credited) and reseeds the CRNG at
 * once (RNDRESEEDCRNG), so every reader after this, kernel or language
 * runtime, gets bytes no other VM restored from the same snapshot gets;
 * then sets CLOCK_REALTIME. 0 or -errno with a message in err. */
int pid1_refresh(const struct msg_announce *a, char *err, size_t err_len);

/* Syncs and reboots (with reboot=k the VMM sees an i8042 reset and ends the
 * VM). Never returns. */
__attribute__((noreturn)) void pid1_end(void);

#endif
