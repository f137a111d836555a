/* `runvm serve`: one daemon for a platform. It listens on a Unix socket
 * (the HTTP stack of api/httpd.c) and runs every submission in a VM of its
 * own: a child runvm in API mode (`runvm --lang LANG --api-fd 3`), restored
 * from its language's snapshot, used for one submission and then stopped.
 * Routes: POST /start (as API mode's; over TCP the answer is the event
 * stream itself), POST /judge (one build, a verdict per test case),
 * Piston's POST /api/v2/execute and GET /api/v2/runtimes, GET /status.
 * A child is a process of its own with its own sandbox, so a VM that
 * escapes its guest reaches one runvm that holds one submission.
 *
 * Up to max_vms children live at once; warm of them per language are
 * started before a request wants them; a request that finds none waits in
 * a bounded queue (429 past it). The daemon relays each child's NDJSON
 * events to an output socket of its own, so it sees every run end, stops
 * a VM whose run outlives its limits, and cancels a run whose reader goes
 * away. SIGTERM stops taking work (503), finishes what was taken, and
 * exits 0. docs/cli.md is the reference. */
#ifndef RUNVM_SERVE_H
#define RUNVM_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/catalog.h"

#define SERVE_MAX_LANGS    16
#define SERVE_MAX_VMS      256
#define SERVE_MAX_CONNS    512 /* connections overall */
#define SERVE_CLIENT_CONNS 128 /* from one client (a peer uid) */
/* What a run may take past its own time limits before the daemon stops
 * its VM: the child's own watchdog (API_RUN_SLACK_MS) comes first. */
#define SERVE_RUN_SLACK_MS 60000
/* A submission whose run asked "keep": true keeps its VM so long for its
 * next run (docs/cli.md, runvm serve's POST /start). */
#define SERVE_KEEP_MS 60000

struct serve_config {
    const char *sock_path; /* created mode 0600, removed at exit */
    const char *listen;    /* TCP too (httpd_listen_tcp's spec), or NULL */
    /* The languages served, as catalog entries (built images). */
    const struct catalog_entry *langs[SERVE_MAX_LANGS];
    size_t nlangs;
    /* Each language's run command (NULL: not known) and whether it has a
     * build step, from the config beside its image: Piston's "args" are
     * appended to it, its answer has "compile" then. */
    const char *const *run_argv[SERVE_MAX_LANGS];
    bool compiled[SERVE_MAX_LANGS];
    const struct catalog *catalog; /* resolves a request's "lang" */
    unsigned int max_vms;          /* children alive at once */
    unsigned int queue;            /* requests waiting for a VM */
    unsigned int warm;             /* idle children kept per language */
    const char *exe;               /* the runvm each child runs */
    /* --cgroup PARENT, passed on to each child (or NULL): each VM's runvm
     * is then a supervisor whose child is the VMM, in PARENT/runvm.PID. */
    const char *cgroup;
    /* More options for every child (--mem N, ...), NULL-terminated. */
    const char *const *child_args;
    uint64_t default_run_ms, default_build_ms; /* the children's defaults */
    uint64_t keep_ms; /* a kept VM's wait for its next run; 0: SERVE_KEEP_MS */
};

/* Serves until a SIGTERM or SIGINT has drained the daemon (serve_main
 * takes them as events itself). Returns the exit status:
 * 0 after a drain, 128+N when a second signal N cut the drain short, 125
 * when the daemon could not start (why on stderr). */
int serve_main(const struct serve_config *cfg);

#endif
