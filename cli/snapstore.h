/* Where `--lang` keeps its images' snapshots, and how a run uses one
 * (DESIGN.md §11): restored from when there is a valid one, taken as the
 * run boots when there is none (the run then goes on in the VM it was
 * taken of). Nothing here fails a run: a snapshot that cannot be read,
 * used or written is said on stderr, and the run boots cold instead.
 *
 * Snapshots live in $RUNVM_SNAPSHOTS, else $RUNVM_CACHE/snapshots, else
 * ~/.cache/runvm/snapshots, one directory per image and boot
 * (snapshot_key): IMAGE-KEY. */
#ifndef RUNVM_SNAPSTORE_H
#define RUNVM_SNAPSTORE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/arch.h"
#include "vmm/snapshot.h"

struct snapstore {
    bool restore; /* snap is open: restore from it */
    bool take;    /* out is open on tmp: take one at the agent's HELLO */
    char name[256];
    char dir[PATH_MAX], tmp[PATH_MAX];
    struct snapshot snap;
    struct snapshot_out out;
};

/* Decides for a boot of files (the image at files->initrd_path) with
 * mem_bytes, cpus and cmdline: opens the snapshot to restore from, or
 * makes a temporary directory to take one into; neither when the store
 * cannot be written. Before the machine is made (and the sandbox). */
void snapstore_plan(struct snapstore *s, const struct arch_boot_files *files,
                    uint64_t mem_bytes, unsigned int cpus, const char *cmdline);

/* The restore failed (why: err): the snapshot is removed, and one is
 * taken as this run boots cold instead, if it can be. */
void snapstore_fallback(struct snapstore *s,
                        const struct arch_boot_files *files, const char *err);

/* At the pause at the agent's HELLO: writes m's snapshot and moves it
 * into place (another run's, there first, is kept). Sandboxed. 0, or -1
 * when there is none (said on stderr). */
int snapstore_take(struct snapstore *s, struct machine *m);

/* `runvm snapshot --verify DIR`: checks the state file and the memory
 * file's digest, prints what the snapshot is of; runvm's exit status (0,
 * or 125 with why). */
int snapstore_verify(const char *dir);

void snapstore_free(struct snapstore *s);

#endif
