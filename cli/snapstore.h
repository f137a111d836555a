/* Where `--lang` keeps its images' snapshots, and how a run uses one
 * (DESIGN.md §11): restored from when there is a valid one, taken as the
 * run boots when there is none (the run then goes on in the VM it was
 * taken of). Nothing here fails a run: a snapshot that cannot be read,
 * used or written is said on stderr, and the run boots cold instead.
 *
 * Snapshots live in $RUNVM_SNAPSHOTS, else $RUNVM_CACHE/snapshots, else
 * ~/.cache/runvm/snapshots (the user's home from passwd without $HOME;
 * none without either), one directory per image and boot (snapshot_key):
 * IMAGE-KEY. The store must be a directory of runvm's user that no one
 * else can write; snapshots are 0700 directories of 0600/0400 files. */
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
 * (can_take) makes a temporary directory to take one into; neither when
 * the store cannot be used. A snapshot found broken (snapshot_open's
 * -EBADMSG, -EPROTO, -ENOEXEC) is removed and taken again; one that could
 * not be read for another reason stays. Before the machine is made (and
 * the sandbox). */
void snapstore_plan(struct snapstore *s, const struct arch_boot_files *files,
                    uint64_t mem_bytes, unsigned int cpus, const char *cmdline,
                    bool can_take);

/* Restoring failed with ret (why: err): the run boots cold; the snapshot
 * is removed and taken again (can_take) when it was at fault (malformed,
 * another machine, a CPU this host lacks), kept otherwise. */
void snapstore_fallback(struct snapstore *s,
                        const struct arch_boot_files *files, int ret,
                        const char *err, bool can_take);

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
