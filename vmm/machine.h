/* A machine: one KVM VM and every device it has, built in one ordered place
 * from one description. The device list (machine.devs) is the one list of
 * what the VM holds: statistics, queue dumps and teardown walk it, and so
 * will snapshot code. The platform's devices come from arch_platform();
 * their models from devices/. A front end fills a machine_desc and decides
 * where the UART's output goes; nothing here writes to stdout. */
#ifndef RUNVM_MACHINE_H
#define RUNVM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/boot_timer.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "vmm/agent_channel.h"
#include "vmm/vm.h"
#include "vmm/vm_virtio.h"

#define MACHINE_MAX_DEVICES 8

struct machine_desc {
    uint64_t mem_bytes;
    unsigned int cpus;
    const char *cmdline; /* the caller's kernel parameters, or NULL */
    /* The UART: console adds the platform's console= parameter. Output
     * goes to uart_out (NULL: dropped); uart_rx_ready says the guest
     * emptied its receive FIFO (serial_input takes more). */
    bool console;
    void (*uart_out)(void *opaque, const uint8_t *data, size_t len);
    void (*uart_rx_ready)(void *opaque);
    void *uart_opaque;
    bool count_exits; /* KVM exits per boot phase (best effort) */
    bool sandboxed;   /* made under runvm's sandbox: it opens no files */
    /* A virtio-console (the guest's /dev/hvc0) on the front end's
     * vconsole_in and vconsole_out, or with vconsole_socket on the first
     * client of a Unix socket (mode 0600) made at that path. */
    bool vconsole;
    int vconsole_in, vconsole_out;
    const char *vconsole_socket;
    /* A virtio-net card on tap device net_tap (NULL: none), MAC net_mac. */
    const char *net_tap;
    uint8_t net_mac[6];
    bool agent_channel; /* the runvm.agent console port */
    /* Guest RAM from a snapshot's memory file (NULL: fresh, zeroed). */
    const struct vm_ram_file *ram_file;
    /* An open /dev/kvm to make the VM with (NULL: /dev/kvm is opened):
     * how a sandboxed runvm makes fresh VMs. */
    const int *kvm_fd;
};

enum machine_dev_kind {
    MACHINE_DEV_UART,
    MACHINE_DEV_RESET,
    MACHINE_DEV_BOOT_TIMER,
    MACHINE_DEV_VCONSOLE,
    MACHINE_DEV_NET,
    MACHINE_DEV_AGENT,
};

/* One device of the machine: its model, and its virtio slot if it has
 * one. */
struct machine_dev {
    enum machine_dev_kind kind;
    const char *name;
    void *model;
    struct vm_virtio *slot; /* NULL for platform devices */
};

struct machine {
    struct vm vm;
    struct serial serial;
    void (*uart_out)(void *opaque, const uint8_t *data, size_t len);
    void (*uart_rx_ready)(void *opaque);
    void *uart_opaque;
    struct i8042 i8042;
    struct boot_timer timer;
    struct virtio_console *vcon;
    struct vm_virtio vcon_slot;
    int vcon_listen_fd;
    const char *vcon_path; /* socket to unlink at the end */
    struct virtio_net *vnet;
    struct vm_virtio vnet_slot;
    int tap_fd;
    struct agent_channel *agent;
    struct machine_dev devs[MACHINE_MAX_DEVICES];
    unsigned int nr_devs;
};

/* Creates the VM and every device desc asks for, in a fixed order (the
 * platform's, then virtio: vconsole, net, agent channel), their back-ends
 * on loop (the caller's; it must outlive the machine). t_start is the
 * VMM's start (CLOCK_MONOTONIC ns) for the boot timeline. 0, or -errno
 * with a one-line message in err; *out is NULL on failure. */
int machine_create(struct machine **out, const struct machine_desc *desc,
                   struct evloop *loop, uint64_t t_start, char *err,
                   size_t err_len) __attribute__((warn_unused_result));

/* The agent channel, or NULL when desc did not ask for one. */
struct agent_channel *machine_agent(struct machine *m);

/* One line per device with traffic counters on f. */
void machine_print_stats(const struct machine *m, FILE *f);

/* Where each virtio queue stands, on f (a guest stopped from outside may
 * be waiting on one). */
void machine_dump_queues(const struct machine *m, FILE *f);

/* Snapshots (vmm/snapshot.c). The devices as a comma-separated list of
 * their names, in order ("uart,i8042,boot-timer,agent channel"): a
 * restore recreates the machine from the same description and checks it
 * has the same list. */
void machine_describe(const struct machine *m, char *buf, size_t len);

/* Device i's state (machine.devs order) into w, the VM paused. 0, or
 * -errno with a message in err (-ENOTSUP: a device that cannot be
 * saved yet). */
int machine_save_device(struct machine *m, unsigned int i, struct state_w *w,
                        char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Restores device i from what machine_save_device wrote, before vm_run.
 * 0, or -errno (-EBADMSG: malformed) with a message in err. */
int machine_restore_device(struct machine *m, unsigned int i, struct state_r *r,
                           char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Frees every device, then the VM. NULL is fine. */
void machine_destroy(struct machine *m);

#endif
