/* Taking a machine's snapshot and restoring one (DESIGN.md §11): the walk
 * over the VM, its vCPUs and its devices (machine.devs) that turns them
 * into a snapshot directory's two files (vmm/snapshot_file.h), and back.
 *
 * Files are opened before runvm confines itself (sandbox): the taking
 * side opens the directory's files before the guest runs and writes them
 * once it is paused; the restoring side opens and checks them before it
 * creates the machine. */
#ifndef RUNVM_SNAPSHOT_H
#define RUNVM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/machine.h"
#include "vmm/snapshot_file.h"

struct snapshot;

#define SNAPSHOT_STATE_FILE  "state"
#define SNAPSHOT_MEMORY_FILE "memory"

/* Where a snapshot is written: the directory's two files, open for
 * writing, and what it is of. */
struct snapshot_out {
    int state_fd, mem_fd;
    struct state_w kept; /* the state file snapshot_save wrote */
    uint8_t kernel_digest[SNAP_DIGEST_LEN];
    uint8_t image_digest[SNAP_DIGEST_LEN];
};

/* Creates dir (mode 0700; an existing one without a snapshot's files is
 * taken) and its two files (0600, the memory file 0400: it holds what
 * the guest's RNG produces until a restore reseeds it), and reads the
 * digests of the kernel and initramfs behind kernel_fd and initrd_fd.
 * Before the sandbox. 0, or -errno with a message in err. */
int snapshot_out_open(struct snapshot_out *out, const char *dir, int kernel_fd,
                      int initrd_fd, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void snapshot_out_close(struct snapshot_out *out);

/* Writes m's snapshot: vm_run returned VM_STOP_PAUSE. Completes the
 * vCPUs' last exits (vm_quiesce), saves the VM, every vCPU and every
 * device, writes guest RAM to the memory file and the state file last
 * (fsync'ed), so a state file that checks out always has its memory. 0,
 * or -errno with a message in err. */
int snapshot_save(struct machine *m, struct snapshot_out *out, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

/* Opens the snapshot out has just written for restoring, without opening
 * a file (a sandboxed runvm opens nothing): the state file is decoded
 * from what snapshot_save kept, the memory file is out's. 0 or -errno
 * with a message in err. */
int snapshot_adopt(struct snapshot *s, struct snapshot_out *out, char *err,
                   size_t err_len) __attribute__((warn_unused_result));

/* A snapshot opened for restoring. */
struct snapshot {
    uint8_t *buf; /* the state file; sections point into it */
    size_t len;
    struct snap_header h;
    struct snap_section sec[SNAP_MAX_SECTIONS];
    unsigned int nsec;
    int mem_fd;
    struct vm_ram_file ram;
};

/* Opens dir's files, reads and checks the state file (snap_decode) and
 * that the memory file is as long as its header says. Nothing is used
 * from a snapshot that fails any check. 0, or -errno with a message in
 * err saying why (-EPROTO another format version, -ENOEXEC another
 * architecture, -EBADMSG corrupt or truncated, -ENOENT missing). */
int snapshot_open(struct snapshot *s, const char *dir, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

/* Sets what the snapshot fixes in a machine description: RAM size and
 * file, vCPUs. The rest (devices) must be as when it was taken. */
void snapshot_desc(const struct snapshot *s, struct machine_desc *d);

/* Writes the snapshot's VM, vCPU and device state into m, made from
 * snapshot_desc's description (its devices checked against the
 * snapshot's). Before vm_run. 0, or -errno with a message in err. */
int snapshot_restore(struct machine *m, const struct snapshot *s, char *err,
                     size_t err_len) __attribute__((warn_unused_result));

/* Safe on a zeroed or failed snapshot. */
void snapshot_close(struct snapshot *s);

/* The directory name of the snapshot a --lang run keeps for its image:
 * "NAME-KEY", where KEY (16 hex digits) hashes what makes a snapshot valid
 * for this boot: the snapshot format, the arch, the kernel's and the
 * initramfs's identity (device, inode, size and modification time: a
 * rebuilt file is another one; the image holds the agent), the RAM size,
 * the vCPU count and the kernel command line. The header records the
 * files' SHA-256 besides (snapshot --verify). 0 or -errno. */
int snapshot_key(char *out, size_t len, const char *name, int kernel_fd,
                 int initrd_fd, uint64_t mem_bytes, unsigned int cpus,
                 const char *cmdline) __attribute__((warn_unused_result));

/* Removes a snapshot directory: its two files, then the directory (best
 * effort; for one found broken or left half-written). */
void snapshot_remove(const char *dir);

#endif
